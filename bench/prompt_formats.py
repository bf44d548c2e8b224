"""Which prompt format, and should few-shot calibrate, by default? Label-ranking accuracy on SST-2 *train* items (never
the eval split) for each format and naming, zero-shot and 4-shot (balanced demonstrations drawn from the rest of the
train split), with and without contextual calibration, through the product's own prompt builder and scorer.
The defaults in base/plan.py (DEFAULT_PROMPT_FORMAT, FewShotSettings.calibrate) were chosen from this table.

    python bench/prompt_formats.py [--limit 100] [--model smollm2-135m-instruct]
"""
from __future__ import annotations

import argparse
import itertools
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="first N SST-2 train items")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from base import paths
    from base.data import load_examples
    from base.plan import FewShotSettings, TaskSpec
    from runners.models import load_model
    from runners.prompting import build_prompt, content_free
    from runners.common import TaskData
    from runners.few_shot import choose_demos
    from runners.scoring import calibrate, rank_choices

    train = load_examples(paths.data_dir() / "sst2" / "train.jsonl")
    examples, pool = train[:args.limit], train[args.limit:]
    labels = ["negative", "positive"]
    model, tokenizer = load_model(args.model, args.device)
    variants = [
        ("chat", "Text", "Label", None),
        ("chat", "Review", "Sentiment", None),
        ("plain", "Text", "Label", None),
        ("plain", "Text", "Label", "Classify the text. Answer with exactly one of: {labels}."),
        ("plain", "Review", "Sentiment", None),
    ]
    demos = choose_demos(FewShotSettings(k=args.k), TaskData(train=pool, eval=examples, labels=labels, corpus=None), 0, args.device)
    print(f"SST-2 train, first {len(examples)} items ({args.k}-shot demonstrations from the other {len(pool)}), {args.model}:")
    print(f"{'format':7s} {'names':18s} {'instruction':12s} {'shots':>5s} {'accuracy':>9s} {'calibrated':>11s} {'says positive':>14s}")
    rows = []
    for (prompt_format, input_name, answer_name, instruction), shots in itertools.product(variants, (0, args.k)):
        task = TaskSpec(name="sst2", type="classification", eval="eval.jsonl", prompt_format=prompt_format,
                        input_name=input_name, answer_name=answer_name, instruction=instruction)
        row_demos = demos if shots else [()] * len(examples)
        prompts = [build_prompt(tokenizer, task, e, labels, demos=d) for e, d in zip(examples, row_demos)]
        free_prompts = [build_prompt(tokenizer, task, content_free(e), labels, demos=d) for e, d in zip(examples, row_demos)]
        unique = sorted(set(free_prompts))
        free = dict(zip(unique, rank_choices(model, tokenizer, unique, [labels] * len(unique))))
        scores = rank_choices(model, tokenizer, prompts, [labels] * len(prompts))
        picks = [labels[max(range(2), key=row.__getitem__)] for row in scores]
        calibrated = [labels[max(range(2), key=calibrate(row, free[f]).__getitem__)] for row, f in zip(scores, free_prompts)]
        accuracy = sum(p == e.target for p, e in zip(picks, examples)) / len(examples)
        accuracy_cal = sum(p == e.target for p, e in zip(calibrated, examples)) / len(examples)
        positive = sum(p == "positive" for p in picks) / len(picks)
        said = "yes" if instruction else "default" if prompt_format == "chat" else "no"
        print(f"{prompt_format:7s} {input_name + ' / ' + answer_name:18s} {said:12s} {shots:5d} "
              f"{accuracy:9.2f} {accuracy_cal:11.2f} {positive:14.2f}", flush=True)
        rows.append({"format": prompt_format, "input_name": input_name, "answer_name": answer_name, "shots": shots,
                     "instruction": instruction, "accuracy": accuracy, "calibrated": accuracy_cal, "positive": positive})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
