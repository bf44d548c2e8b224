"""Parity: `adapt compare` beside a plain transformers + peft script (bench/parity_plain.py) on the same SST-2 items
and settings — zero-shot and k-shot ranked by label log-likelihood, and LoRA trained with the same r, lr, schedule,
batch and epochs. Prints both accuracies and the gap; a gap over --tolerance is a bug until explained.

    python bench/parity.py                       # 100 eval items, 400 train, SmolLM2-135M-Instruct
    python bench/parity.py --eval-limit 200 --only zero_shot few_shot

Deliberate settings on the product side, so that both train the same way: eval_fraction 0 (the product holds out
10% of train for its eval-loss curve by default), constant learning rate without warmup (the product's default is
cosine with 5% warmup), the plain prompt format with the script's `Review:` / `Sentiment:` names.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from parity_plain import add_settings

HERE = Path(__file__).resolve().parent


def plan(args: argparse.Namespace, data: Path, output: Path) -> dict:
    shared = {"r": args.r, "alpha": args.alpha, "dropout": args.dropout, "learning_rate": args.lr, "batch_size": args.batch,
              "epochs": args.epochs, "lr_scheduler": "constant", "warmup_ratio": 0.0, "eval_fraction": 0.0, "max_length": 256}
    strategies = {"zero_shot": {"strategy": "zero_shot"}, "few_shot": {"strategy": "few_shot", "k": args.k, "orderings": args.orderings},
                  "lora": {"strategy": "lora", **shared}}
    return {
        "name": "parity", "model": args.model, "seed": args.seed, "output_dir": str(output),
        "tasks": [{"name": "sst2", "type": "classification", "train": str(data / "train.jsonl"), "eval": str(data / "eval.jsonl"),
                   "labels": ["negative", "positive"], "eval_limit": args.eval_limit, "train_limit": args.train_limit,
                   "prompt_format": "plain", "input_name": "Review", "answer_name": "Sentiment"}],
        "strategies": [strategies[name] for name in args.only],
        "forgetting": {"enabled": False},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    add_settings(parser)
    parser.add_argument("--only", nargs="+", default=["zero_shot", "few_shot", "lora"], choices=["zero_shot", "few_shot", "lora"])
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument("--workdir", help="keep the product's results here (default: a temporary folder)")
    args = parser.parse_args()

    from base import paths  # the orchestrator may use adaptlab; parity_plain.py must not

    adapt = str(Path(sys.executable).with_name("adapt"))
    data = paths.data_dir() / "sst2"
    model_dir = subprocess.run([adapt, "models", "ensure", args.model], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="parity-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "plan.yaml").write_text(yaml.safe_dump(plan(args, data, work / "results"), sort_keys=False), encoding="utf-8")

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([adapt, "compare", str(work / "plan.yaml")], check=True, env=env)
    product = {}
    for path in sorted((work / "results" / "runs").glob("*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if run["status"] == "ok":
            product[run["strategy"]] = run["metrics"]["accuracy"]

    skip = [name for name in ("zero_shot", "few_shot", "lora") if name not in args.only]
    plain_args = [sys.executable, str(HERE / "parity_plain.py"), "--data", str(data), "--model", model_dir,
                  "--eval-limit", str(args.eval_limit), "--train-limit", str(args.train_limit), "--k", str(args.k),
                  "--orderings", str(args.orderings),
                  "--seed", str(args.seed), "--r", str(args.r), "--alpha", str(args.alpha), "--dropout", str(args.dropout),
                  "--lr", str(args.lr), "--batch", str(args.batch), "--epochs", str(args.epochs),
                  "--json", str(work / "plain.json"), *(["--skip", *skip] if skip else [])]
    subprocess.run(plain_args, check=True, env=env)
    script = json.loads((work / "plain.json").read_text(encoding="utf-8"))

    print(f"\nSST-2, first {args.eval_limit} eval items, {args.train_limit} train, seed {args.seed}, model {args.model}")
    print(f"{'strategy':10s} {'adapt compare':>14s} {'plain script':>13s} {'gap':>7s}")
    worst = 0.0
    for name in args.only:
        ours, theirs = product.get(name), script.get(name, {}).get("accuracy")
        if ours is None or theirs is None:
            print(f"{name:10s} {'failed' if ours is None else f'{ours:.3f}':>14s} {'—' if theirs is None else f'{theirs:.3f}':>13s}")
            worst = float("inf")
            continue
        worst = max(worst, abs(ours - theirs))
        print(f"{name:10s} {ours:14.3f} {theirs:13.3f} {ours - theirs:+7.3f}")
    print(f"largest gap {worst:.3f} (tolerance {args.tolerance}); results in {work}")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
