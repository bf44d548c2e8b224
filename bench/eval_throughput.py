"""Multiple-choice evaluation throughput: adaptlab's scorer vs lm-eval's HFLM, same model, same items, same run.

Both score query + choice by log-likelihood over the first N items of a bundled benchmark (the data `adapt data
ensure` provisions, the task YAML the forgetting checks use). Prints items/s for each, the ratio, the accuracy
each computes and how often they pick the same choice.

    python bench/eval_throughput.py [--benchmark arc_easy] [--limit 50] [--model smollm2-135m-instruct]
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="arc_easy")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from runners.bundled import ensure_datasets
    from runners.forgetting import benchmarks_dir, headline_metric, quiet_lm_eval, run_benchmark, task_manager, wrap_model
    from runners.models import load_model
    from runners.scoring import choice_logprobs

    ensure_datasets([args.benchmark])
    with open(benchmarks_dir() / f"{args.benchmark}.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle][: args.limit]
    model, tokenizer = load_model(args.model, args.device)
    model.eval()
    normalised = headline_metric(args.benchmark) == "acc_norm"

    start = time.perf_counter()
    ours = []
    for row in rows:
        scores = choice_logprobs(model, tokenizer, row["query"], row["choices"])
        key = (lambda i: scores[i][0] / max(scores[i][1], 1)) if normalised else (lambda i: scores[i][0])
        ours.append(max(range(len(scores)), key=key))
    ours_s = time.perf_counter() - start

    lm = wrap_model(model, tokenizer)
    with task_manager([args.benchmark]) as manager, quiet_lm_eval():
        start = time.perf_counter()
        theirs = run_benchmark(lm, args.benchmark, args.limit, manager)
        theirs_s = time.perf_counter() - start

    our_correct = [float(pick == row["gold"]) for pick, row in zip(ours, rows)]
    agree = sum(float(a == b) for a, b in zip(our_correct, theirs.correct)) / len(rows)
    print(f"{args.benchmark}, {len(rows)} items, {args.model} on {args.device}, metric {theirs.metric}")
    print(f"{'scorer':<22}{'seconds':>10}{'items/s':>10}{'accuracy':>10}")
    print(f"{'adaptlab scoring':<22}{ours_s:>10.2f}{len(rows) / ours_s:>10.2f}{sum(our_correct) / len(rows):>10.3f}")
    print(f"{'lm-eval HFLM':<22}{theirs_s:>10.2f}{len(rows) / theirs_s:>10.2f}{theirs.score:>10.3f}")
    print(f"throughput ratio (adaptlab / lm-eval): {theirs_s / ours_s:.2f}x; same right/wrong on {agree:.0%} of items")


if __name__ == "__main__":
    main()
