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

Every run goes through `accelerate.Accelerator` (runners/launch.py starts one process, or N under `accelerate launch`
/ torchrun): DDP for adapters, FSDP or DeepSpeed for full fine-tuning (from the launch config), mixed precision,
checkpoints through `save_state`/`load_state`. The loop itself stays ours rather than HF Trainer's because packing
with restarting position ids, answer-only loss normalised over the global batch and the cost figures are what
compare measures; bench/train_throughput.py measures it against Trainer. Batches are planned identically on every
process (seeded) and each global micro-batch is split between the processes, so `batch_size` is global: 1 and N
processes take the same optimizer steps on the same examples. accelerate's DataLoader sharding is not used: it
either repeats examples to even out the last batch or leaves processes with different batch counts.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
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
STAGING_SUFFIX = ".staging"
# A model attribute naming the folder of an adapter as it was before training, for initialisations that change the base
# weights (PiSSA, OLoRA): peft subtracts it when saving, so the saved adapter applies to the unchanged base model.
INITIAL_ADAPTER = "adaptlab_initial_adapter"


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
    positions_seen: int = 0  # on this process: rows x width of every micro-batch it computed, padding included
    peak_batch_positions: int = 0  # the largest micro-batch tensor (rows x width): what activations peak with


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
    """Indices of sequences per row, every row at most max_length tokens: as few rows as first-fit-decreasing needs,
    over which the sequences are then spread longest first, each into the emptiest row it fits (LPT). The rows are
    padded to the widest, so even rows matter: 270 tokens in rows of 256 become two rows of ~135, not one of 256 and
    one of 14 padded to 256 (1.9x the positions). Where the spread does not fit, the first-fit rows stand."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    first_fit: list[list[int]] = []
    room: list[int] = []
    for index in order:
        size = lengths[index]
        for row, free in enumerate(room):
            if free >= size:
                first_fit[row].append(index)
                room[row] -= size
                break
        else:
            first_fit.append([index])
            room.append(max_length - size)
    if len(first_fit) == 1:
        return first_fit
    rows: list[list[int]] = [[] for _ in first_fit]
    filled = [0] * len(rows)
    for index in order:
        row = min(range(len(rows)), key=lambda r: filled[r])
        if filled[row] + lengths[index] > max_length:
            return first_fit
        rows[row].append(index)
        filled[row] += lengths[index]
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


def plan_groups(lengths: list[int], batch_size: int, packed: bool, generator: Any) -> list[list[int]]:
    """One epoch of micro-batches, each a group of `batch_size` example indices, as Trainer counts them, so a plan's
    batch size and epochs give the same number of optimizer steps packed or not, on one process or many: the group is
    global and split between the processes (`share`). Unpacked groups hold examples of similar length."""
    import torch

    if not packed:
        return length_groups(lengths, batch_size, generator)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def layout(group: list[int], lengths: list[int], max_length: int, packed: bool) -> list[list[int]]:
    """The rows of one micro-batch: its examples packed into as few rows of at most max_length tokens as fit, or one
    example a row (padded) when not packed."""
    if not packed:
        return [[i] for i in group]
    return [[group[j] for j in row] for row in pack([lengths[i] for i in group], max_length)]


def plan_batches(sequences: list[Sequence], batch_size: int, max_length: int, packed: bool, generator: Any) -> list[list[list[int]]]:
    """One epoch on one process: micro-batches, each a list of rows, each row a list of sequence indices."""
    lengths = [len(s.input_ids) for s in sequences]
    return [layout(group, lengths, max_length, packed) for group in plan_groups(lengths, batch_size, packed, generator)]


def share(processes: Any, group: list[int]) -> list[int]:
    """This process's part of a global micro-batch (accelerate's split: contiguous, the first ones get one more)."""
    with processes.split_between_processes(group) as mine:
        return list(mine)


# --- loss ---------------------------------------------------------------------------------------------------


def batch_loss_sum(model: Any, batch: dict[str, Any] | None, device: Any) -> tuple[Any, int]:
    """Summed token loss of a batch and its number of target tokens (labels are shifted inside the model).

    A process whose share of a micro-batch is empty (`batch` None) still runs a zero-loss forward on one token: under
    DDP/FSDP every process must run the same forwards and backwards, or the collectives inside them hang.
    """
    import torch

    if batch is None:
        logits = model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device), use_cache=False).logits
        return logits.sum() * 0.0, 0
    inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "labels", "position_ids", "attention_mask")}
    targets = int((batch["labels"] != IGNORE).sum())
    output = model(**inputs, use_cache=False, num_items_in_batch=max(targets, 1))
    return output.loss * targets, targets


def local_batch(sequences: list[Sequence], mine: list[int], lengths: list[int], max_length: int, pad_id: int,
                packed: bool) -> dict[str, Any] | None:
    """This process's examples of a micro-batch as tensors (None when it has none)."""
    return collate(sequences, layout(mine, lengths, max_length, packed), pad_id, packed) if mine else None


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


def eval_loss(model: Any, sequences: list[Sequence], batch_size: int, max_length: int, packed: bool, pad_id: int,
              device: Any, processes: Any = None) -> float | None:
    """Token-mean loss over held-out sequences, each process scoring its share of every micro-batch (summed)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import reduce

    if not sequences:
        return None
    processes = processes or PartialState()
    lengths = [len(s.input_ids) for s in sequences]
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, target tokens
    generator = torch.Generator().manual_seed(0)
    with eval_mode(model), torch.no_grad():
        for group in plan_groups(lengths, batch_size, packed, generator):
            mine = share(processes, group)
            loss, targets = batch_loss_sum(model, local_batch(sequences, mine, lengths, max_length, pad_id, packed), device)
            totals += torch.tensor([float(loss), targets], dtype=torch.float64, device=device)
    total, count = reduce(totals, "sum").tolist() if processes.num_processes > 1 else totals.tolist()
    return total / count if count else None


# --- checkpoints --------------------------------------------------------------------------------------------


def keep_trainable_only(models: list[Any], weights: list[dict[str, Any]], _folder: str) -> None:
    """accelerate save-state hook: checkpoint only the trained weights (a LoRA checkpoint of an 8B model is MBs,
    not the 16 GB of frozen base weights); `load_state(strict=False)` fills them back in."""
    for model, state in zip(models, weights):
        trained = {name for name, param in model.named_parameters() if param.requires_grad}
        for key in [key for key in state if key not in trained]:
            del state[key]


def save_checkpoint(accelerator: Any, checkpoint_dir: Path, epoch: int, stats: TrainStats, fingerprint: dict[str, Any]) -> None:
    """accelerate's state (trained weights as safetensors, optimizer, schedule, every process's RNG) plus our stats
    after an epoch, staged in a uniquely named folder then renamed; only the newest checkpoint is kept. Every process
    calls this (checkpoint_dir is shared; the main process names the staging folder and tells the others)."""
    from accelerate.utils import broadcast_object_list

    folder = checkpoint_dir / f"epoch-{epoch}"
    named = [str(staging_dir(checkpoint_dir, f".epoch-{epoch}.", STAGING_SUFFIX)) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(named)
    staging = Path(named[0])
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(staging / "stats.json", asdict(stats))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        previous = read_marker(checkpoint_dir)
        write_json_atomic(checkpoint_dir / CHECKPOINT_MARKER, {"epoch": epoch, "folder": folder.name, "fingerprint": fingerprint})
        if previous and previous.get("folder") != folder.name:
            shutil.rmtree(checkpoint_dir / previous["folder"], ignore_errors=True)
        remove_stale_staging(checkpoint_dir)
    accelerator.wait_for_everyone()


def remove_stale_staging(folder: Path) -> None:
    """Staging folders a killed run left behind (one compare per results folder holds the lock, so none is live)."""
    for stale in Path(folder).glob(f".*{STAGING_SUFFIX}"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def read_marker(checkpoint_dir: Path) -> dict[str, Any] | None:
    marker = checkpoint_dir / CHECKPOINT_MARKER
    return json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None


def load_checkpoint(accelerator: Any, checkpoint_dir: Path, fingerprint: dict[str, Any]) -> tuple[int, TrainStats] | None:
    """Restore the last epoch checkpoint when it was written by the same training setup; else start fresh.

    Nothing in a checkpoint can run code: accelerate reads weights from safetensors and the rest with
    torch.load(weights_only=True) (tensors and plain values); anything else is refused with the folder named."""
    import pickle

    from base.errors import AdaptError

    marker = read_marker(checkpoint_dir)
    if not marker or marker.get("fingerprint") != fingerprint or not (checkpoint_dir / marker["folder"]).is_dir():
        return None
    folder = checkpoint_dir / marker["folder"]
    try:
        accelerator.load_state(str(folder), strict=False)
    except (pickle.UnpicklingError, RuntimeError, OSError) as error:
        raise AdaptError(f"refusing to resume from this checkpoint: {str(error).splitlines()[0]}", file=folder,
                         hint="a checkpoint holds only tensors and plain values; delete the folder to train from the start") from None
    stats = TrainStats(**json.loads((folder / "stats.json").read_text(encoding="utf-8")))
    return int(marker["epoch"]), stats


# --- the loop -----------------------------------------------------------------------------------------------


def make_accelerator(device: str = "cpu", mixed_precision: str = "no") -> Any:
    """The Accelerator every training run goes through. `split_batches`: a plan's batch_size is global (examples
    per micro-batch over all processes), so the schedule steps once per optimizer step whatever the process count."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    return Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision,
                       dataloader_config=DataLoaderConfiguration(split_batches=True))


def train(model: Any, tokenizer: Any, pairs: list[tuple[str, str]], settings: Any, *, eval_pairs: list[tuple[str, str]] = (),
          device: str = "cpu", seed: int = 0, checkpoint_dir: str | Path | None = None, progress: Callable[[int], None] | None = None,
          loss_on_prompt: bool = False, accelerator: Any = None, save_to: Path | None = None,
          make_optimizer: Callable[[Any, Any], Any] | None = None) -> TrainStats:
    """Train `model` on (prompt, completion) pairs with `settings` (base.plan.TrainSettings), through `accelerator`
    (one process, or every process of an `accelerate launch`/torchrun, each calling this with the same arguments).

    `settings.batch_size` is global: each optimizer step sees batch_size x grad_accum examples however many processes
    share them, so 1 and N processes follow the same loss curve. `progress` is an advance(n, loss=...) callback called once per
    optimizer step; without one the main process opens a `base.progress` bar. With `checkpoint_dir`, a checkpoint is
    written after every epoch and a re-run resumes from the last one. With `save_to`, the trained model (adapter or
    full weights) is saved there in the standard format, gathered from every process (FSDP shards included).
    `make_optimizer(model, settings)` replaces the default AdamW over the trainable parameters (GaLore).
    """
    import torch
    from transformers import get_scheduler

    from base.errors import AdaptError

    accelerator = accelerator or make_accelerator(device)
    torch.manual_seed(seed)
    packed = settings.packing and not is_prompt_learning(model)
    sequences = encode_pairs(tokenizer, list(pairs), settings.max_length, loss_on_prompt)
    held_out = encode_pairs(tokenizer, list(eval_pairs), settings.max_length, loss_on_prompt)
    if not sequences:
        raise AdaptError("no training example has a non-empty answer to learn", field="train",
                         hint="check that the train file's target/label/answer column is filled")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    lengths = [len(s.input_ids) for s in sequences]
    targets_of = [sum(label != IGNORE for label in s.labels) for s in sequences]
    micro_per_epoch = len(plan_groups(lengths, settings.batch_size, packed, torch.Generator().manual_seed(seed)))
    steps_per_epoch = math.ceil(micro_per_epoch / settings.grad_accum)
    total_steps = math.ceil(settings.epochs * steps_per_epoch)
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    epochs = math.ceil(total_steps / steps_per_epoch)

    if settings.grad_checkpointing:
        enable_checkpointing(model)
    optimizer = (make_optimizer or adamw)(model, settings)
    scheduler = get_scheduler(settings.lr_scheduler, optimizer, num_warmup_steps=math.ceil(settings.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    prepared, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    hook = accelerator.register_save_state_pre_hook(keep_trainable_only)

    fingerprint = {"sequences": len(sequences), "tokens": sum(lengths), "seed": seed, "processes": accelerator.num_processes,
                   "settings": settings.model_dump(mode="json", exclude={"label", "tasks"})}
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    stats, start_epoch = TrainStats(), 0
    restored = load_checkpoint(accelerator, checkpoint_dir, fingerprint) if checkpoint_dir else None
    if restored:
        start_epoch, stats = restored
        stats.resumed_from = start_epoch

    if accelerator.num_processes > 1:  # one line per process in the run's output.log: who trained on what
        mine = sum(len(share(accelerator, group)) for group in plan_groups(lengths, settings.batch_size, packed,
                                                                           torch.Generator().manual_seed(seed)))
        sys.stderr.write(f"process {accelerator.process_index}/{accelerator.num_processes} ({accelerator.distributed_type.value}, "
                         f"{accelerator.device}): {mine} of {len(sequences)} examples an epoch\n")  # one write: lines stay whole
        sys.stderr.flush()
    elapsed_before = stats.train_time_s
    started = time.perf_counter()
    shown = progress if progress else (lambda _n, **_fields: None) if not accelerator.is_main_process else None
    with (nullcontext(shown) if shown else bar("training", total_steps - stats.steps)) as advance:
        prepared.train()
        for epoch in range(start_epoch, epochs):
            groups = plan_groups(lengths, settings.batch_size, packed, torch.Generator().manual_seed(seed * 1000 + epoch))
            for window_start in range(0, len(groups), settings.grad_accum):
                if stats.steps >= total_steps:
                    break
                window = groups[window_start:window_start + settings.grad_accum]
                batches = [local_batch(sequences, share(accelerator, group), lengths, settings.max_length, pad_id, packed)
                           for group in window]
                targets = sum(targets_of[i] for group in window for i in group)
                lr = scheduler.get_last_lr()[0]
                step_start = time.perf_counter()
                loss = _optimizer_step(accelerator, prepared, batches, targets, optimizer, scheduler)
                stats.step_time_s += time.perf_counter() - step_start
                stats.steps += 1
                stats.examples_seen += sum(len(group) for group in window)
                stats.tokens_seen += sum(lengths[i] for group in window for i in group)
                shapes = [batch["input_ids"].numel() for batch in batches if batch is not None]
                stats.positions_seen += sum(shapes)
                stats.peak_batch_positions = max([stats.peak_batch_positions, *shapes])
                stats.train_loss.append([stats.steps, round(loss, 5)])
                stats.learning_rate.append(lr)
                advance(1, loss=loss)
            stats.epochs_done = min(epoch + 1.0, stats.steps / steps_per_epoch)
            held_loss = eval_loss(prepared, held_out, settings.batch_size, settings.max_length, packed, pad_id,
                                  accelerator.device, accelerator)
            if held_loss is not None:
                stats.eval_loss.append([epoch + 1, round(held_loss, 5)])
            stats.train_time_s = elapsed_before + time.perf_counter() - started
            if checkpoint_dir is not None:
                save_checkpoint(accelerator, checkpoint_dir, epoch + 1, stats, fingerprint)
            if settings.early_stop_patience is not None and epochs_since_best(stats.eval_loss) >= settings.early_stop_patience:
                stats.stopped_early = True
                break
    stats.train_time_s = elapsed_before + time.perf_counter() - started
    stats.examples_per_s = stats.examples_seen / stats.step_time_s if stats.step_time_s else 0.0
    stats.tokens_per_s = stats.tokens_seen / stats.step_time_s if stats.step_time_s else 0.0
    hook.remove()
    if save_to is not None:
        save_model(accelerator, prepared, tokenizer, save_to)
    return stats


def adamw(model: Any, settings: Any) -> Any:
    """The default optimizer: AdamW over the trainable parameters."""
    import torch

    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate,
                             weight_decay=settings.weight_decay)


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


def _optimizer_step(accelerator: Any, model: Any, batches: list[dict[str, Any] | None], targets: int, optimizer: Any,
                    scheduler: Any) -> float:
    """One optimizer step over a window of micro-batches; returns the mean loss over all their target tokens.

    Accumulation follows accelerate's recipe for variable-size batches: gradients synchronise only on the window's
    last micro-batch (`no_sync` before it), and each process's summed loss is divided by the window's *global* target
    count and multiplied by the process count (DDP averages gradients), so accum 2 x batch 4 on 2 processes gives
    the gradient of batch 8 on one. accelerate's `accumulate()` is not used: it divides by a fixed step count, and an
    epoch's last window can be shorter.
    """
    import torch

    local = torch.zeros((), device=accelerator.device)
    for index, batch in enumerate(batches):
        with nullcontext() if index == len(batches) - 1 else accelerator.no_sync(model):
            loss_sum, _ = batch_loss_sum(model, batch, accelerator.device)
            accelerator.backward(loss_sum * (accelerator.num_processes / max(targets, 1)))
        local += loss_sum.detach()
    accelerator.clip_grad_norm_(model.parameters(), CLIP_NORM)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    total = accelerator.reduce(local, "sum") if accelerator.num_processes > 1 else local
    return float(total) / max(targets, 1)


# --- the shared recipe --------------------------------------------------------------------------------------


def split_held_out(pairs: list[tuple[str, str]], fraction: float, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Hold out a seeded `fraction` of the training pairs for the per-epoch eval loss (at least one stays in train)."""
    import random

    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = min(int(len(pairs) * fraction), len(pairs) - 1)
    held_set = set(order[:held])
    return [p for i, p in enumerate(pairs) if i not in held_set], [pairs[i] for i in sorted(held_set)]


def save_model(accelerator: Any, model: Any, tokenizer: Any, folder: Path) -> Path:
    """An adapter in the standard peft format, or full weights + tokenizer, gathered from every process (a collective
    under FSDP/ZeRO-3, so every process calls this) and written by the main one, staged then renamed (no half folders)."""
    state = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        staging = staging_dir(folder.parent, f".{folder.name}.", STAGING_SUFFIX)
        initial = getattr(unwrapped, INITIAL_ADAPTER, None)
        if initial:  # PiSSA/OLoRA: saved as the plain LoRA it amounts to, from the whole model (adapters run under DDP)
            unwrapped.save_pretrained(staging, path_initial_model_for_weight_conversion=str(initial))
        else:
            unwrapped.save_pretrained(staging, state_dict=state)
        if not hasattr(unwrapped, "peft_config"):
            tokenizer.save_pretrained(staging)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        remove_stale_staging(folder.parent)
    accelerator.wait_for_everyone()
    return folder


def shards_weights(accelerator: Any) -> bool:
    """FSDP and DeepSpeed leave each process a shard of the weights: every process scores the saved model instead."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def load_saved(spec: Any, folder: Path, device: str, quantization_config: Any = None) -> Any:
    """The model `save_model` wrote, for scoring: the base model plus the adapter, or the full weights."""
    from runners.models import load_model

    if (folder / "adapter_config.json").exists():
        from peft import PeftModel

        base, _ = load_model(spec.model, device, spec.dtype, quantization_config=quantization_config)
        return PeftModel.from_pretrained(base, folder)
    return load_model(str(folder), device, spec.dtype)[0]


def run_training(spec: Any, build_model: Callable[[Any, Any], Any], *, quantization_config: Any = None,
                 continued_pretraining: bool = False, make_optimizer: Callable[[Any, Any], Any] | None = None) -> Any:
    """Data -> base model -> build_model(model, settings) -> train -> save -> score on the eval split -> RunResult.

    Supervised strategies train on `prompting.training_pair`, the exact prompt they are scored with; continued
    pre-training trains on the raw corpus (every token) and is then scored zero-shot like the base model.
    Under a multi-process launch every process trains its share, then scores its share of the eval split
    (runners.shards); the main process returns the RunResult, the others None. The process group stays up for the
    forgetting checks after this (runners.launch ends it). Several machines share the results folder (as checkpoints
    already need), so every process can read back a model saved from FSDP/DeepSpeed shards.
    """
    from base.errors import AdaptError
    from runners import common
    from runners.models import load_model, model_digest, resolve_model_path
    from runners.prompting import training_pair

    started = time.time()
    settings = spec.strategy
    common.seed_everything(spec.seed)
    accelerator = make_accelerator(spec.device, spec.launch.mixed_precision)
    # this process's own device: cuda:<local rank> under DDP, QLoRA included; accelerate names CPU processes cpu:0
    device = "cpu" if accelerator.device.type == "cpu" else str(accelerator.device)
    data = common.load_task_data(spec, need_corpus=continued_pretraining)
    model, tokenizer = load_model(spec.model, device, spec.dtype, quantization_config=quantization_config)
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
    saved = spec.run_dir / "model"
    with common.PeakMemory(spec.device) as peak:
        stats = train(model, tokenizer, train_pairs, settings, eval_pairs=eval_pairs, device=spec.device,
                      seed=spec.seed, checkpoint_dir=checkpoints, loss_on_prompt=continued_pretraining,
                      accelerator=accelerator, save_to=saved, make_optimizer=make_optimizer)
    if accelerator.is_main_process:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the saved model supersedes them; full-FT ones are GBs
    if shards_weights(accelerator):  # each process scores with the whole saved model, not its shard of the weights
        model = load_saved(spec, saved, device, quantization_config)
    evaluation, _ = common.score(spec, model, tokenizer, data, common.prompts_for(tokenizer, spec, data, data.eval))
    if not accelerator.is_main_process:
        return None
    trainable, total = common.count_params(model)
    cost = {
        "train_time_s": round(stats.train_time_s, 3), "examples_per_s": round(stats.examples_per_s, 3),
        "tokens_per_s": round(stats.tokens_per_s, 1), "peak_memory_mb": round(peak.peak_mb, 1),
        "trainable_params": trainable, "total_params": total, "adapter_size_mb": round(common.folder_size_mb(saved), 4),
        "train_tokens": stats.tokens_seen, "padded_tokens": stats.positions_seen, "peak_batch_tokens": stats.peak_batch_positions,
        "train_steps": stats.steps, "epochs_done": stats.epochs_done, "stopped_early": stats.stopped_early,
        "resumed_from_epoch": stats.resumed_from, "processes": accelerator.num_processes,
    }
    return common.build_result(spec, evaluation, cost, started,
                               curves={"train_loss": stats.train_loss, "eval_loss": stats.eval_loss},
                               artifact_dir=spec.run_dir, model_hash=model_digest(resolve_model_path(spec.model)))
