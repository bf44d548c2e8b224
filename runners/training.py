"""The one training loop every weight-changing strategy shares (LoRA, QLoRA, IA3, prompt tuning, full FT, CPT).

Recipes differ only in how they build the model; everything else lives here so that a fix reaches all of them:
- loss on the answer tokens only (prompt tokens get label -100) unless `loss_on_prompt` (CPT trains on all text);
- packing: the examples of a micro-batch are concatenated into rows of `max_length` tokens, with position ids restarting at 0
  for each example and no attention mask. transformers (masking_utils.find_packed_sequence_indices) turns
  restarting position ids into a block-diagonal causal mask for sdpa/eager, so examples never attend to each
  other; `test_packed_row_matches_separate_examples` checks that on CPU. Prompt tuning cannot pack (its virtual
  tokens prefix each row, not each example) and falls back to length-grouped padded batches;
- gradient accumulation normalised by the number of target tokens in the whole accumulated batch, so accum 2 x
  batch 4 gives the gradient of batch 8;
- AdamW, a transformers schedule (cosine with warmup by default), gradient clipping at 1.0, seeded shuffling per epoch;
- eval loss per epoch, optional early stop, a checkpoint per epoch and resume from the last one.

A plain PyTorch loop rather than HF Trainer: bench/train_throughput.py measures it against Trainer.
Multi-GPU: not wired in. `accelerate.Accelerator` would wrap model/optimizer/backward here, but QLoRA models come
with a device_map that Accelerator.prepare must not move; left for when a multi-GPU machine can test it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from base.io import staging_dir, write_json_atomic
from base.progress import bar
from runners.models import is_prompt_learning

IGNORE = -100
CLIP_NORM = 1.0
CHECKPOINT_MARKER = "latest.json"
WEIGHTS_FILE = "trainable.safetensors"
STATE_FILE = "state.pt"  # optimizer, schedule, RNG: read back with torch.load(weights_only=True)
STAGING_SUFFIX = ".staging"


@dataclass
class TrainStats:
    """What one training run measured; train_loss is per optimizer step, eval_loss per epoch."""

    train_time_s: float = 0.0
    examples_per_s: float = 0.0
    tokens_per_s: float = 0.0  # non-pad tokens trained on per second of optimizer steps (evals/checkpoints excluded)
    step_time_s: float = 0.0  # time inside optimizer steps; train_time_s adds eval loss and checkpoints
    steps: int = 0
    epochs_done: float = 0.0
    train_loss: list[list[float]] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)  # the schedule's value at each step
    eval_loss: list[list[float]] = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int | None = None  # the epoch whose checkpoint this run continued from
    examples_seen: int = 0
    tokens_seen: int = 0


@dataclass
class Sequence:
    """One tokenized training example: input ids and labels (-100 where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]


# --- tokenization and batching ------------------------------------------------------------------------------


def encode_pairs(tokenizer: Any, pairs: list[tuple[str, str]], max_length: int, loss_on_prompt: bool = False) -> list[Sequence]:
    """Tokenize (prompt, completion) pairs the way generation sees them: prompt tokens, then completion tokens.

    Too-long SFT examples lose the start of their prompt (the answer is what is learned); with
    `loss_on_prompt` (raw text) a long text is cut into several max_length windows so nothing is dropped.
    """
    sequences = []
    for prompt, completion in pairs:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] if completion else []
        if loss_on_prompt:
            ids = prompt_ids + completion_ids
            for start in range(0, len(ids), max_length):
                window = ids[start:start + max_length]
                if len(window) > 1:
                    sequences.append(_sequence(window, [True] * len(window)))
            continue
        completion_ids = completion_ids[:max_length - 1]
        budget = max_length - len(completion_ids)
        prompt_ids = prompt_ids[max(0, len(prompt_ids) - budget):]
        if completion_ids:
            sequences.append(_sequence(prompt_ids + completion_ids, [False] * len(prompt_ids) + [True] * len(completion_ids)))
    return sequences


def _sequence(ids: list[int], trained: list[bool]) -> Sequence:
    """The first token never gets a label: in a packed row it would be predicted from the previous example."""
    labels = [token if keep else IGNORE for token, keep in zip(ids, trained)]
    labels[0] = IGNORE
    return Sequence(list(ids), labels)


def pack(lengths: list[int], max_length: int) -> list[list[int]]:
    """First-fit-decreasing bin packing: indices of sequences per row, every row at most max_length tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        size = lengths[index]
        for row, free in enumerate(room):
            if free >= size:
                rows[row].append(index)
                room[row] -= size
                break
        else:
            rows.append([index])
            room.append(max_length - size)
    return rows


def length_groups(lengths: list[int], batch_size: int, generator: Any) -> list[list[int]]:
    """Unpacked fallback: batches of similar length (little padding), in random order."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def collate(sequences: list[Sequence], rows: list[list[int]], pad_id: int, packed: bool) -> dict[str, Any]:
    """Tensors for a batch of rows: packed rows carry restarting position_ids and no mask, padded rows a mask."""
    import torch

    ids, labels, positions, masks = [], [], [], []
    for row in rows:
        row_ids = [t for i in row for t in sequences[i].input_ids]
        ids.append(row_ids)
        labels.append([t for i in row for t in sequences[i].labels])
        positions.append([p for i in row for p in range(len(sequences[i].input_ids))])
        masks.append([1] * len(row_ids))
    width = max(len(r) for r in ids)

    def pad(values: list[list[int]], fill: int) -> Any:
        return torch.tensor([v + [fill] * (width - len(v)) for v in values], dtype=torch.long)

    batch = {"input_ids": pad(ids, pad_id), "labels": pad(labels, IGNORE)}
    if packed:
        # the padding tail gets positions restarting at 0, so it forms its own block and attends to nothing real
        batch["position_ids"] = torch.tensor([p + list(range(width - len(p))) for p in positions], dtype=torch.long)
    else:
        batch["attention_mask"] = pad(masks, 0)
    batch["real_tokens"] = sum(len(r) for r in ids)
    batch["examples"] = sum(len(r) for r in rows)
    return batch


def plan_batches(sequences: list[Sequence], batch_size: int, max_length: int, packed: bool, generator: Any) -> list[list[list[int]]]:
    """One epoch of micro-batches of `batch_size` examples each, as Trainer counts them, so a plan's batch size and
    epochs give the same number of optimizer steps packed or not. Packing only changes the layout: a micro-batch's
    examples share as few rows of at most max_length tokens as fit, instead of each padded to the longest.
    Returns micro-batches, each a list of rows, each row a list of sequence indices."""
    import torch

    lengths = [len(s.input_ids) for s in sequences]
    if not packed:
        return [[[i] for i in batch] for batch in length_groups(lengths, batch_size, generator)]
    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches = []
    for start in range(0, len(order), batch_size):
        group = order[start:start + batch_size]
        batches.append([[group[j] for j in row] for row in pack([lengths[i] for i in group], max_length)])
    return batches


# --- loss ---------------------------------------------------------------------------------------------------


def batch_loss_sum(model: Any, batch: dict[str, Any], device: str) -> tuple[Any, int]:
    """Summed token loss of a batch and its number of target tokens (labels are shifted inside the model)."""
    inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "labels", "position_ids", "attention_mask")}
    targets = int((batch["labels"] != IGNORE).sum())
    if targets == 0:
        return None, 0
    output = model(**inputs, use_cache=False, num_items_in_batch=targets)
    return output.loss * targets, targets


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Eval mode (no dropout) for the eval loss, but bitsandbytes Linear4bit layers stay in train mode.

    On a CPU with AVX512-BF16, a no-grad forward of a Linear4bit in eval mode repacks its weights for inference,
    after which backward silently yields no input gradient (docs: /work/shared/NOTES.md). The repack only
    happens when `not self.training`, so keeping those layers in train mode (they have no dropout) avoids it.
    """
    was_training = model.training
    model.eval()
    for module in model.modules():
        if type(module).__name__ in ("Linear4bit", "LinearNF4", "LinearFP4"):
            module.train()
    try:
        yield
    finally:
        model.train(was_training)


def eval_loss(model: Any, sequences: list[Sequence], batch_size: int, max_length: int, packed: bool, pad_id: int, device: str) -> float | None:
    """Token-mean loss over held-out sequences."""
    import torch

    if not sequences:
        return None
    total, count = 0.0, 0
    generator = torch.Generator().manual_seed(0)
    with eval_mode(model), torch.no_grad():
        for rows in plan_batches(sequences, batch_size, max_length, packed, generator):
            loss, targets = batch_loss_sum(model, collate(sequences, rows, pad_id, packed), device)
            if targets:
                total += float(loss)
                count += targets
    return total / count if count else None


# --- checkpoints --------------------------------------------------------------------------------------------


def _trainable_state(model: Any) -> dict[str, Any]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(checkpoint_dir: Path, epoch: int, model: Any, optimizer: Any, scheduler: Any, stats: TrainStats,
                    fingerprint: dict[str, Any]) -> None:
    """Trainable weights (safetensors) + optimizer, schedule and RNG (tensors and plain values only) after an epoch,
    staged in a uniquely named folder and renamed into place; only the newest checkpoint is kept."""
    import torch
    from safetensors.torch import save_file

    folder = checkpoint_dir / f"epoch-{epoch}"
    staging = staging_dir(checkpoint_dir, f".epoch-{epoch}.", STAGING_SUFFIX)
    save_file(_trainable_state(model), staging / WEIGHTS_FILE)
    torch.save({
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }, staging / STATE_FILE)
    write_json_atomic(staging / "stats.json", asdict(stats))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    previous = read_marker(checkpoint_dir)
    write_json_atomic(checkpoint_dir / CHECKPOINT_MARKER, {"epoch": epoch, "folder": folder.name, "fingerprint": fingerprint})
    if previous and previous.get("folder") != folder.name:
        shutil.rmtree(checkpoint_dir / previous["folder"], ignore_errors=True)
    remove_stale_staging(checkpoint_dir)


def remove_stale_staging(folder: Path) -> None:
    """Staging folders a killed run left behind (one compare per results folder holds the lock, so none is live)."""
    for stale in Path(folder).glob(f".*{STAGING_SUFFIX}"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def read_marker(checkpoint_dir: Path) -> dict[str, Any] | None:
    marker = checkpoint_dir / CHECKPOINT_MARKER
    return json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None


def load_checkpoint(checkpoint_dir: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: dict[str, Any]) -> tuple[int, TrainStats] | None:
    """Restore the last epoch checkpoint when it was written by the same training setup; else start fresh.

    Nothing in a checkpoint can run code: weights come from safetensors and the rest through torch.load with
    weights_only=True (tensors and plain values); anything else is refused with the folder named."""
    import pickle

    import torch
    from safetensors.torch import load_file

    from base.errors import AdaptError

    marker = read_marker(checkpoint_dir)
    folder = checkpoint_dir / marker["folder"] if marker else None
    if not marker or marker.get("fingerprint") != fingerprint or not (folder / STATE_FILE).exists():
        return None
    try:
        trainable = load_file(folder / WEIGHTS_FILE)
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError) as error:
        raise AdaptError(f"refusing to resume from this checkpoint: {str(error).splitlines()[0]}", file=folder,
                         hint="a checkpoint holds only tensors and plain values; delete the folder to train from the start") from None
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in trainable.items():
            params[name].copy_(value.to(params[name].device))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    stats = TrainStats(**json.loads((folder / "stats.json").read_text(encoding="utf-8")))
    return int(marker["epoch"]), stats


# --- the loop -----------------------------------------------------------------------------------------------


def train(model: Any, tokenizer: Any, pairs: list[tuple[str, str]], settings: Any, *, eval_pairs: list[tuple[str, str]] = (),
          device: str = "cpu", seed: int = 0, checkpoint_dir: str | Path | None = None, progress: Callable[[int], None] | None = None,
          loss_on_prompt: bool = False) -> TrainStats:
    """Train `model` in place on (prompt, completion) pairs with `settings` (base.plan.TrainSettings).

    `progress` is an advance(n, loss=...) callback called once per optimizer step; without one a `base.progress` bar is
    opened. With `checkpoint_dir`, a checkpoint is written after every epoch and a re-run resumes from the last one.
    """
    import torch
    from transformers import get_scheduler

    from base.errors import AdaptError

    torch.manual_seed(seed)
    packed = settings.packing and not is_prompt_learning(model)
    sequences = encode_pairs(tokenizer, list(pairs), settings.max_length, loss_on_prompt)
    held_out = encode_pairs(tokenizer, list(eval_pairs), settings.max_length, loss_on_prompt)
    if not sequences:
        raise AdaptError("no training example has a non-empty answer to learn", field="train",
                         hint="check that the train file's target/label/answer column is filled")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    micro_per_epoch = len(plan_batches(sequences, settings.batch_size, settings.max_length, packed, torch.Generator().manual_seed(seed)))
    steps_per_epoch = math.ceil(micro_per_epoch / settings.grad_accum)
    total_steps = math.ceil(settings.epochs * steps_per_epoch)
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    epochs = math.ceil(total_steps / steps_per_epoch)

    if settings.grad_checkpointing:
        enable_checkpointing(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = get_scheduler(settings.lr_scheduler, optimizer, num_warmup_steps=math.ceil(settings.warmup_ratio * total_steps),
                              num_training_steps=total_steps)

    fingerprint = {"sequences": len(sequences), "tokens": sum(len(s.input_ids) for s in sequences), "seed": seed,
                   "settings": settings.model_dump(mode="json", exclude={"label", "tasks"})}
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    stats, start_epoch = TrainStats(), 0
    restored = load_checkpoint(checkpoint_dir, model, optimizer, scheduler, fingerprint) if checkpoint_dir else None
    if restored:
        start_epoch, stats = restored
        stats.resumed_from = start_epoch

    elapsed_before = stats.train_time_s
    started = time.perf_counter()
    with (nullcontext(progress) if progress else bar("training", total_steps - stats.steps)) as advance:
        model.train()
        for epoch in range(start_epoch, epochs):
            generator = torch.Generator().manual_seed(seed * 1000 + epoch)
            batches = plan_batches(sequences, settings.batch_size, settings.max_length, packed, generator)
            for window_start in range(0, len(batches), settings.grad_accum):
                if stats.steps >= total_steps:
                    break
                window = [collate(sequences, rows, pad_id, packed) for rows in batches[window_start:window_start + settings.grad_accum]]
                lr = scheduler.get_last_lr()[0]
                step_start = time.perf_counter()
                loss = _optimizer_step(model, window, trainable, optimizer, scheduler, device)
                stats.step_time_s += time.perf_counter() - step_start
                stats.steps += 1
                stats.examples_seen += sum(b["examples"] for b in window)
                stats.tokens_seen += sum(b["real_tokens"] for b in window)
                stats.train_loss.append([stats.steps, round(loss, 5)])
                stats.learning_rate.append(lr)
                advance(1, loss=loss)
            stats.epochs_done = min(epoch + 1.0, stats.steps / steps_per_epoch)
            held_loss = eval_loss(model, held_out, settings.batch_size, settings.max_length, packed, pad_id, device)
            if held_loss is not None:
                stats.eval_loss.append([epoch + 1, round(held_loss, 5)])
            stats.train_time_s = elapsed_before + time.perf_counter() - started
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, epoch + 1, model, optimizer, scheduler, stats, fingerprint)
            if settings.early_stop_patience is not None and epochs_since_best(stats.eval_loss) >= settings.early_stop_patience:
                stats.stopped_early = True
                break
    stats.train_time_s = elapsed_before + time.perf_counter() - started
    stats.examples_per_s = stats.examples_seen / stats.step_time_s if stats.step_time_s else 0.0
    stats.tokens_per_s = stats.tokens_seen / stats.step_time_s if stats.step_time_s else 0.0
    return stats


def enable_checkpointing(model: Any) -> None:
    """Activation checkpointing under transformers' current name, or the old one (a FutureWarning in 5.x) where
    that is all the installed version has."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def epochs_since_best(eval_loss: list[list[float]]) -> int:
    """Epochs after the lowest eval loss so far (0 when the last epoch is the best); read from the curve so a
    resumed run keeps counting where the crashed one stopped."""
    if not eval_loss:
        return 0
    losses = [loss for _, loss in eval_loss]
    return len(losses) - 1 - losses.index(min(losses))


def _optimizer_step(model: Any, window: list[dict[str, Any]], trainable: list[Any], optimizer: Any, scheduler: Any, device: str) -> float:
    """One optimizer step over `window` micro-batches; the loss is the mean over all their target tokens."""
    import torch

    targets = sum(int((b["labels"] != IGNORE).sum()) for b in window)
    total = 0.0
    for batch in window:
        loss_sum, count = batch_loss_sum(model, batch, device)
        if count:
            (loss_sum / targets).backward()
            total += float(loss_sum.detach())
    torch.nn.utils.clip_grad_norm_(trainable, CLIP_NORM)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total / max(targets, 1)


# --- the shared recipe --------------------------------------------------------------------------------------


def split_held_out(pairs: list[tuple[str, str]], fraction: float, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Hold out a seeded `fraction` of the training pairs for the per-epoch eval loss (at least one stays in train)."""
    import random

    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = min(int(len(pairs) * fraction), len(pairs) - 1)
    held_set = set(order[:held])
    return [p for i, p in enumerate(pairs) if i not in held_set], [pairs[i] for i in sorted(held_set)]


def save_model(model: Any, tokenizer: Any, folder: Path) -> Path:
    """An adapter in the standard peft format, or full weights + tokenizer; staged then renamed (no half folders)."""
    staging = staging_dir(folder.parent, f".{folder.name}.", STAGING_SUFFIX)
    model.save_pretrained(staging)
    if not hasattr(model, "peft_config"):
        tokenizer.save_pretrained(staging)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    remove_stale_staging(folder.parent)
    return folder


def run_training(spec: Any, build_model: Callable[[Any, Any], Any], *, quantization_config: Any = None,
                 continued_pretraining: bool = False) -> Any:
    """Data -> base model -> build_model(model, settings) -> train -> save -> score on the eval split -> RunResult.

    Supervised strategies train on `prompting.training_pair`, the exact prompt they are scored with; continued
    pre-training trains on the raw corpus (every token) and is then scored zero-shot like the base model.
    """
    from base.errors import AdaptError
    from runners import common
    from runners.models import load_model, model_digest, resolve_model_path
    from runners.prompting import training_pair

    started = time.time()
    settings = spec.strategy
    common.seed_everything(spec.seed)
    data = common.load_task_data(spec, need_corpus=continued_pretraining)
    model, tokenizer = load_model(spec.model, spec.device, spec.dtype, quantization_config=quantization_config)
    model = build_model(model, settings)
    if continued_pretraining:
        pairs = [(doc.text, tokenizer.eos_token or "") for doc in data.corpus or [] if doc.text.strip()]
        source, key = spec.task.corpus, "corpus"
    else:
        pairs = [training_pair(tokenizer, spec.task, example, data.labels) for example in data.train]
        source, key = spec.task.train, "train"
    if not pairs:
        raise AdaptError(f"{settings.strategy} has nothing to train on: the {key} data is empty", file=source,
                         field=f"tasks.{spec.task.name}.{key}")
    train_pairs, eval_pairs = split_held_out(pairs, settings.eval_fraction, spec.seed)
    checkpoints = spec.run_dir / "checkpoints"
    with common.PeakMemory(spec.device) as peak:
        stats = train(model, tokenizer, train_pairs, settings, eval_pairs=eval_pairs, device=spec.device,
                      seed=spec.seed, checkpoint_dir=checkpoints, loss_on_prompt=continued_pretraining)
    saved = save_model(model, tokenizer, spec.run_dir / "model")
    shutil.rmtree(checkpoints, ignore_errors=True)  # the saved model supersedes them; full-FT ones are GBs
    trainable, total = common.count_params(model)
    evaluation, _ = common.score(spec, model, tokenizer, data, common.prompts_for(tokenizer, spec, data, data.eval))
    cost = {
        "train_time_s": round(stats.train_time_s, 3), "examples_per_s": round(stats.examples_per_s, 3),
        "tokens_per_s": round(stats.tokens_per_s, 1), "peak_memory_mb": round(peak.peak_mb, 1),
        "trainable_params": trainable, "total_params": total, "adapter_size_mb": round(common.folder_size_mb(saved), 4),
        "train_steps": stats.steps, "epochs_done": stats.epochs_done, "stopped_early": stats.stopped_early,
        "resumed_from_epoch": stats.resumed_from,
    }
    return common.build_result(spec, evaluation, cost, started,
                               curves={"train_loss": stats.train_loss, "eval_loss": stats.eval_loss},
                               artifact_dir=spec.run_dir, model_hash=model_digest(resolve_model_path(spec.model)))
