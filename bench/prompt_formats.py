"""Which prompt format should be the default? Zero-shot label-ranking accuracy on SST-2 *train* items (never the eval
split) for each format and naming, with and without contextual calibration, through the product's own prompt
builder and scorer. The defaults in advisor/plan.py (DEFAULT_PROMPT_FORMAT) were chosen from this table.

    python bench/prompt_formats.py [--limit 100] [--model smollm2-135m-instruct]
"""
from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="first N SST-2 train items")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from base import paths
    from base.plan import TaskSpec
    from base.data import load_examples
    from runners.models import load_model
    from runners.prompting import build_prompt, content_free
    from runners.scoring import calibrate, rank_choices

    examples = load_examples(paths.data_dir() / "sst2" / "train.jsonl", limit=args.limit)
    labels = ["negative", "positive"]
    model, tokenizer = load_model(args.model, args.device)
    variants = [
        ("chat", "Text", "Label", None),
        ("chat", "Review", "Sentiment", None),
        ("plain", "Text", "Label", None),
        ("plain", "Text", "Label", "Classify the text. Answer with exactly one of: {labels}."),
        ("plain", "Review", "Sentiment", None),
    ]
    print(f"SST-2 train, first {len(examples)} items, {args.model}: zero-shot accuracy by label log-likelihood")
    print(f"{'format':7s} {'names':18s} {'instruction':12s} {'accuracy':>9s} {'calibrated':>11s} {'says positive':>14s}")
    rows = []
    for prompt_format, input_name, answer_name, instruction in variants:
        task = TaskSpec(name="sst2", type="classification", eval="eval.jsonl", prompt_format=prompt_format,
                        input_name=input_name, answer_name=answer_name, instruction=instruction)
        prompts = [build_prompt(tokenizer, task, e, labels) for e in examples]
        scores = rank_choices(model, tokenizer, prompts, [labels] * len(prompts))
        free = rank_choices(model, tokenizer, [build_prompt(tokenizer, task, content_free(examples[0]), labels)], [labels])[0]
        picks = [labels[max(range(2), key=row.__getitem__)] for row in scores]
        calibrated = [labels[max(range(2), key=calibrate(row, free).__getitem__)] for row in scores]
        accuracy = sum(p == e.target for p, e in zip(picks, examples)) / len(examples)
        accuracy_cal = sum(p == e.target for p, e in zip(calibrated, examples)) / len(examples)
        positive = sum(p == "positive" for p in picks) / len(picks)
        print(f"{prompt_format:7s} {input_name + ' / ' + answer_name:18s} {'yes' if instruction else 'default' if prompt_format == 'chat' else 'no':12s} "
              f"{accuracy:9.2f} {accuracy_cal:11.2f} {positive:14.2f}", flush=True)
        rows.append({"format": prompt_format, "input_name": input_name, "answer_name": answer_name,
                     "instruction": instruction, "accuracy": accuracy, "calibrated": accuracy_cal, "positive": positive})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
