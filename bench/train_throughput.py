"""LoRA training throughput: our loop (packed rows) vs transformers.Trainer + peft (padding per batch).

Both train the same LoRA on the same model, data, batch size, learning rate and number of optimizer steps;
throughput is real (non-pad) tokens per second of training. Goals (issue 11): >= 1.0x Trainer on SST-2 sentences,
>= 1.3x on padding-heavy data (SciQ's mixed-length support paragraphs) from packing (no padding waste).
Then our loop again as 2 processes (torchrun, DDP over gloo on CPU) with the same global batch: tokens/s of the
whole job, 1 process vs 2.

    python bench/train_throughput.py                       # the embedded SmolLM2-135M-Instruct, SST-2 sentences
    python bench/train_throughput.py --random-init         # same architecture, random weights (no weights needed)
    python bench/train_throughput.py --tiny --steps 5      # a 2-layer model: checks that the script runs
    python bench/train_throughput.py --processes 1         # skip the 2-process run
    python bench/train_throughput.py --data sciq --max-length 512   # padding-heavy: support paragraphs of mixed length
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ("the film is a great and moving story with wonderful acting but the plot drags a little and the ending "
         "feels rushed although the music is lovely and the cast clearly enjoys every dull scene").split()


def sentences(count: int, seed: int, dataset: str = "sst2") -> tuple[list[tuple[str, str]], str]:
    """(prompt, answer) pairs from the bundled data (`adapt data ensure`): SST-2 sentences and labels (short, similar
    lengths), or SciQ questions after their support paragraph (10 to 500+ tokens: padding-heavy); SST-2 falls back to
    a fixed synthetic list of varied lengths where the data is missing."""
    try:
        from runners.bundled import ensure_datasets
        from base.data import load_examples

        examples = load_examples(ensure_datasets([dataset])[dataset] / "train.jsonl")
    except Exception as error:  # noqa: BLE001 - the benchmark still runs, on synthetic sentences, and says so
        if dataset != "sst2":
            raise
        rng = random.Random(seed)
        return ([(" ".join(rng.choices(WORDS, k=rng.randint(3, 45))), rng.choice(["positive", "negative"]))
                 for _ in range(count)], f"synthetic ({type(error).__name__})")
    pairs = [(f"{example.context}\n\n{example.prompt}" if example.context else example.prompt, example.target)
             for example in examples]
    return (pairs * (count // len(pairs) + 1))[:count], f"{dataset} (bundled)"


def load(args: argparse.Namespace):
    """(model builder, tokenizer): every call of the builder gives the same fresh weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from runners.models import load_tokenizer, resolve_model_path

    path = resolve_model_path(args.model)
    tokenizer = load_tokenizer(path)
    config = AutoConfig.from_pretrained(path)
    if args.tiny:
        config.update({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "head_dim": 16})

    def build():
        torch.manual_seed(0)
        if args.tiny or args.random_init:
            return AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(args.device)
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(args.device)

    return build, tokenizer


def training_pairs(tokenizer, count: int, seed: int, dataset: str = "sst2") -> tuple[list[tuple[str, str]], str]:
    """The exact prompts the product trains on (runners.prompting): an SST-2-like classification task, or SciQ as QA."""
    from base.plan import TaskSpec
    from base.data import Example
    from runners.prompting import training_pair

    task = TaskSpec(name=dataset, type="classification" if dataset == "sst2" else "qa", eval=Path("unused.jsonl"))
    labels = ["negative", "positive"] if dataset == "sst2" else None
    texts, source = sentences(count, seed, dataset)
    return [training_pair(tokenizer, task, Example(id=str(i), prompt=text, target=label), labels)
            for i, (text, label) in enumerate(texts)], source


def ours(build, tokenizer, pairs, args) -> dict:
    import torch

    from base.plan import LoraSettings
    from runners.lora import lora_model
    from runners.training import train

    settings = LoraSettings(max_steps=args.steps, epochs=100, batch_size=args.batch, learning_rate=args.lr,
                            max_length=args.max_length, warmup_ratio=0.0, eval_fraction=0.0, dropout=0.0)
    model = lora_model(build(), settings)
    stats = train(model, tokenizer, pairs, settings, device=args.device, seed=0)
    return {"tokens_per_s": stats.tokens_per_s, "examples_per_s": stats.examples_per_s, "time_s": stats.train_time_s,
            "steps": stats.steps, "tokens": stats.tokens_seen, "final_loss": stats.train_loss[-1][1],
            "threads": torch.get_num_threads()}


def trainer_baseline(build, tokenizer, pairs, args) -> dict:
    """The usual recipe: tokenized examples, DataCollatorForSeq2Seq pads each batch, Trainer runs the steps."""
    import tempfile

    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from base.plan import LoraSettings
    from runners.lora import lora_model
    from runners.training import IGNORE, encode_pairs

    settings = LoraSettings(dropout=0.0)
    model = lora_model(build(), settings)
    sequences = encode_pairs(tokenizer, pairs, args.max_length)
    dataset = Dataset.from_list([{"input_ids": s.input_ids, "attention_mask": [1] * len(s.input_ids), "labels": s.labels}
                                 for s in sequences])
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)
    counted = {"tokens": 0, "examples": 0}

    def counting_collator(features):
        batch = collator(features)
        counted["tokens"] += int(batch["attention_mask"].sum())
        counted["examples"] += len(features)
        return batch

    with tempfile.TemporaryDirectory() as out:
        arguments = TrainingArguments(output_dir=out, per_device_train_batch_size=args.batch, max_steps=args.steps,
                                      learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=0,
                                      logging_steps=max(args.steps, 1), save_strategy="no", report_to=[], seed=0,
                                      use_cpu=args.device == "cpu", dataloader_num_workers=0, disable_tqdm=True,
                                      max_grad_norm=1.0)
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=counting_collator)
        start = time.perf_counter()
        output = trainer.train()
        elapsed = time.perf_counter() - start
    return {"tokens_per_s": counted["tokens"] / elapsed, "examples_per_s": counted["examples"] / elapsed,
            "time_s": elapsed, "steps": output.global_step, "tokens": counted["tokens"], "final_loss": output.training_loss}


def multi_process(args: argparse.Namespace, processes: int) -> dict:
    """This script again under torchrun with `processes` workers, each running `ours` on its share of every global
    batch; the main one writes the row."""
    with tempfile.TemporaryDirectory() as folder:
        row_file = Path(folder) / "row.json"
        worker = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                  str(Path(__file__).resolve()), *sys.argv[1:], "--worker-row", str(row_file)]
        subprocess.run(worker, check=True, stdout=subprocess.DEVNULL)
        return json.loads(row_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name or local HF folder")
    parser.add_argument("--random-init", action="store_true", help="the model's architecture with random weights")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer 64-wide model with the model's tokenizer")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8, help="global: examples per step over all processes")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--data", choices=("sst2", "sciq"), default="sst2",
                        help="sst2: short sentences; sciq: support paragraph + question, mixed lengths (padding-heavy)")
    parser.add_argument("--processes", type=int, default=2, help="the multi-process run's process count (1: skip it)")
    parser.add_argument("--worker-row", type=Path, help=argparse.SUPPRESS)  # set by multi_process for its workers
    args = parser.parse_args()

    build, tokenizer = load(args)
    pairs, source = training_pairs(tokenizer, args.examples, seed=0, dataset=args.data)
    if args.worker_row:
        row = ours(build, tokenizer, pairs, args)
        if int(os.environ.get("RANK", "0")) == 0:
            args.worker_row.write_text(json.dumps(row))
        return
    print(f"{len(pairs)} examples; LoRA r=8 on q,k,v,o; batch {args.batch}, {args.steps} steps, lr {args.lr}, "
          f"device {args.device}, data {source}")
    baseline = trainer_baseline(build, tokenizer, pairs, args)
    packed = ours(build, tokenizer, pairs, args)
    rows = [("Trainer + DataCollatorForSeq2Seq", baseline), ("adaptlab (packed), 1 process", packed)]
    if args.processes > 1:
        rows.append((f"adaptlab (packed), {args.processes} processes", multi_process(args, args.processes)))
    for name, row in rows:
        print(f"{name:34s} {row['tokens_per_s']:9.1f} tok/s {row['examples_per_s']:8.2f} ex/s "
              f"{row['time_s']:7.2f} s  {row['steps']} steps  {row['tokens']} tokens  loss {row['final_loss']:.3f}"
              + (f"  ({row['threads']} torch threads a process)" if "threads" in row else ""))
    print(f"ratio (tokens/s, ours / Trainer): {packed['tokens_per_s'] / baseline['tokens_per_s']:.2f}x")
    if args.processes > 1:
        print(f"ratio (tokens/s, {args.processes} processes / 1): {rows[-1][1]['tokens_per_s'] / packed['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
