"""dpo: direct preference optimisation (Rafailov et al. 2023) with TRL's DPOTrainer, LoRA on the policy.

The task's `preferences:` pairs are rendered in the task's own prompt format (the prompt a scored example gets, the
answers as a scored completion), so what DPO teaches is what the task scorer reads. A seeded `eval_fraction` of the
pairs is held out: reward accuracy is the share of held-out pairs whose chosen answer gets the higher implicit reward
beta * (log pi(y|x) - log pi_ref(y|x)), as TRL computes it (the reference is the base model, adapter switched off).
The adapted model is then scored on the task's eval split like every other strategy.

TRL's trainer rather than runners.training: DPO's loss needs the policy and the reference on both answers of each
pair, which is what TRL implements and maintains; adaptlab's loop trains on (prompt, completion) pairs only.
"""
from __future__ import annotations

import shutil
import time
from typing import Any, Sequence

from base.data import Example, Preference, load_preferences
from base.errors import AdaptError
from base.plan import DpoSettings, RunSpec
from base.results import RunResult
from runners import common
from runners.adapters import peft_config
from runners.prompting import answer_prefix, build_prompt
from runners.shards import is_main_process
from runners.training import split_held_out


def preference_rows(tokenizer: Any, spec: RunSpec, pairs: Sequence[Preference], labels: Sequence[str] | None) -> list[dict]:
    """TRL's explicit-prompt format, the prompt rendered as the task renders a scored example (TRL adds the EOS)."""
    rows = []
    for pair in pairs:
        prompt = build_prompt(tokenizer, spec.task, Example(id=pair.id, prompt=pair.prompt, target=pair.chosen), labels)
        rows.append({"prompt": prompt, "chosen": answer_prefix(prompt) + pair.chosen,
                     "rejected": answer_prefix(prompt) + pair.rejected})
    return rows


def dpo_config(spec: RunSpec, settings: DpoSettings, device: str) -> Any:
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(spec.run_dir / "trl"), per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps or -1, learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler, warmup_steps=settings.warmup_ratio, weight_decay=settings.weight_decay,
        max_grad_norm=1.0, max_length=settings.max_length, beta=settings.beta, seed=spec.seed, use_cpu=device == "cpu",
        bf16=device.startswith("cuda") and spec.dtype in ("auto", "bfloat16"), gradient_checkpointing=settings.grad_checkpointing,
        report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, log_level="error")


def run(spec: RunSpec) -> RunResult | None:
    import datasets
    from transformers import PrinterCallback
    from trl import DPOTrainer

    from runners.models import load_model, model_digest, resolve_model_path

    started = time.time()
    settings = spec.strategy
    common.seed_everything(spec.seed)
    data = common.load_task_data(spec)
    if spec.task.preferences is None:
        raise AdaptError("dpo needs preference pairs", field=f"tasks.{spec.task.name}.preferences")
    pairs = load_preferences(spec.task.preferences, limit=spec.task.train_limit)
    model, tokenizer = load_model(spec.model, spec.device, spec.dtype)
    train_rows, held_rows = split_held_out(preference_rows(tokenizer, spec, pairs, data.labels), settings.eval_fraction,
                                           spec.seed)
    datasets.disable_progress_bars()
    trainer = DPOTrainer(model=model, args=dpo_config(spec, settings, spec.device), processing_class=tokenizer,
                         train_dataset=datasets.Dataset.from_list(train_rows),
                         eval_dataset=datasets.Dataset.from_list(held_rows) if held_rows else None,
                         peft_config=peft_config(settings))
    trainer.remove_callback(PrinterCallback)  # its log dicts would flood the run's output
    with common.PeakMemory(spec.device) as peak:
        step_start = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - step_start
    rewards = trainer.evaluate() if held_rows else {}
    saved = spec.run_dir / "model"
    trainer.save_model(str(saved))
    (saved / "training_args.bin").unlink(missing_ok=True)  # a pickle; the run's settings are in its result
    shutil.rmtree(spec.run_dir / "trl", ignore_errors=True)  # the trainer's output folder (nothing saved there)
    model = trainer.model
    trainable, total = common.count_params(model)
    evaluation, _ = common.score(spec, model, tokenizer, data, common.prompts_for(tokenizer, spec, data, data.eval))
    if not is_main_process():  # each process scored its share; the main one reports
        return None
    history = trainer.state.log_history
    cost = {"train_time_s": round(train_seconds, 3), "peak_memory_mb": round(peak.peak_mb, 1),
            "trainable_params": trainable, "total_params": total, "adapter_size_mb": round(common.folder_size_mb(saved), 4),
            "train_steps": trainer.state.global_step, "epochs_done": float(trainer.state.epoch or 0.0),
            "examples_per_s": round(len(train_rows) * float(trainer.state.epoch or 0.0) / train_seconds, 3)
            if train_seconds else 0.0}
    reward_metrics = {"reward_accuracy": rewards.get("eval_rewards/accuracies"),
                      "reward_margin": rewards.get("eval_rewards/margins"), "preference_pairs_held_out": len(held_rows),
                      "preference_pairs_trained": len(train_rows)}
    return common.build_result(spec, evaluation, cost, started, artifact_dir=spec.run_dir, extra_metrics=reward_metrics,
                               curves={"train_loss": [[h["step"], round(h["loss"], 5)] for h in history if "loss" in h],
                                       "eval_loss": []},
                               model_hash=model_digest(resolve_model_path(spec.model)))
