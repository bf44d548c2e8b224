"""Scoring throughput, same model, same items, one run: adaptlab's rank scorer vs the generate-and-parse path vs
lm-eval's HFLM.loglikelihood.

1. Classification (SST-2 eval items, zero-shot plain prompt): rank two one-token labels (`runners.scoring.rank_choices`),
   generate up to --max-new-tokens and parse (`runners.scoring.generate` + `match_label`, the pre-rank default),
   and HFLM.loglikelihood on the same (prompt, " label") requests.
2. Multiple choice (a bundled benchmark, e.g. ARC-Easy): rank_choices vs lm-eval's own task run (HFLM).
Prints items/s, the ratios, each path's accuracy and how often rank and lm-eval agree.
Goals (issue 9): rank >= 10x the generation path for one-token labels, >= 1.0x lm-eval. Ranking one-token labels
is one forward over the prompt; generating n tokens is that same forward plus n - 1 one-token steps, so the ratio
is bounded by how costly those steps are next to the prompt's forward (--max-new-tokens sets n).

    python bench/eval_throughput.py [--limit 100] [--benchmark arc_easy] [--mc-limit 50]
"""
from __future__ import annotations

import argparse
import json
import time


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="SST-2 eval items")
    parser.add_argument("--max-new-tokens", type=int, default=4, help="generation path: the demo's setting for SST-2")
    parser.add_argument("--benchmark", default="arc_easy")
    parser.add_argument("--mc-limit", type=int, default=50)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    from lm_eval.api.instance import Instance

    from base import paths
    from runners.bundled import ensure_datasets
    from runners.forgetting import benchmarks_dir, headline_metric, quiet_lm_eval, run_benchmark, task_manager, wrap_model
    from runners.models import load_model
    from runners.scoring import generate, match_label, rank_choices

    labels = ["negative", "positive"]
    with open(paths.data_dir() / "sst2" / "eval.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle][: args.limit]
    prompts = [f"Text: {row['text']}\nLabel:" for row in rows]
    gold = [row["label"] for row in rows]
    model, tokenizer = load_model(args.model, args.device)
    model.eval()
    lm = wrap_model(model, tokenizer)

    def accuracy(predicted):
        return sum(p == g for p, g in zip(predicted, gold)) / len(gold)

    ranked, rank_s = timed(lambda: rank_choices(model, tokenizer, prompts, [labels] * len(prompts), batch_size=args.batch_size))
    rank_pred = [labels[max(range(2), key=row.__getitem__)] for row in ranked]
    (texts, _), generate_s = timed(lambda: generate(model, tokenizer, prompts, args.max_new_tokens, args.batch_size))
    generate_pred = [match_label(text, labels) for text in texts]
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(prompt, f" {label}"), idx=j)
                for prompt in prompts for j, label in enumerate(labels)]
    theirs, hflm_s = timed(lambda: lm.loglikelihood(requests))
    hflm_pred = [labels[max(range(2), key=lambda j: theirs[2 * i + j][0])] for i in range(len(prompts))]
    same = sum(a == b for a, b in zip(rank_pred, hflm_pred)) / len(rows)
    print(f"SST-2 zero-shot, {len(rows)} items, {args.model} on {args.device}, batch {args.batch_size}")
    print(f"{'path':<34}{'seconds':>9}{'items/s':>9}{'accuracy':>10}")
    for name, seconds, predicted in (("rank (adaptlab)", rank_s, rank_pred),
                                     (f"generate {args.max_new_tokens} tokens + parse", generate_s, generate_pred),
                                     ("lm-eval HFLM.loglikelihood", hflm_s, hflm_pred)):
        print(f"{name:<34}{seconds:>9.2f}{len(rows) / seconds:>9.2f}{accuracy(predicted):>10.3f}")
    print(f"rank vs generation: {generate_s / rank_s:.1f}x; rank vs lm-eval: {hflm_s / rank_s:.2f}x; "
          f"rank and lm-eval pick the same label on {same:.0%} of items; "
          f"the generations name no label on {sum(p is None for p in generate_pred) / len(rows):.0%} of items")

    ensure_datasets([args.benchmark])
    with open(benchmarks_dir() / f"{args.benchmark}.jsonl", encoding="utf-8") as handle:
        mc = [json.loads(line) for line in handle][: args.mc_limit]
    normalised = headline_metric(args.benchmark) == "acc_norm"
    scores, ours_s = timed(lambda: rank_choices(model, tokenizer, [r["query"] for r in mc], [r["choices"] for r in mc],
                                                batch_size=args.batch_size))
    picks = []
    for row, row_scores in zip(mc, scores):
        key = (lambda j: row_scores[j] / max(len(row["choices"][j]), 1)) if normalised else row_scores.__getitem__  # lm-eval: by len(choice)
        picks.append(max(range(len(row_scores)), key=key))
    with task_manager([args.benchmark]) as manager, quiet_lm_eval():
        result, theirs_s = timed(lambda: run_benchmark(lm, args.benchmark, args.mc_limit, manager))
    ours_correct = [float(p == row["gold"]) for p, row in zip(picks, mc)]
    agree = sum(float(a == b) for a, b in zip(ours_correct, result.correct)) / len(mc)
    print(f"\n{args.benchmark}, {len(mc)} items, metric {result.metric}")
    print(f"{'path':<34}{'seconds':>9}{'items/s':>9}{'accuracy':>10}")
    print(f"{'rank (adaptlab)':<34}{ours_s:>9.2f}{len(mc) / ours_s:>9.2f}{sum(ours_correct) / len(mc):>10.3f}")
    print(f"{'lm-eval HFLM (task run)':<34}{theirs_s:>9.2f}{len(mc) / theirs_s:>9.2f}{result.score:>10.3f}")
    print(f"rank vs lm-eval: {theirs_s / ours_s:.2f}x; same right/wrong on {agree:.0%} of items")


if __name__ == "__main__":
    main()
