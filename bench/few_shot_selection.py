"""Which few-shot demonstrations, in what order, by default? Label-ranking accuracy on SST-2 *train* items (never
the eval split) for k, the way demonstrations are chosen, and how many orders their scores are averaged over,
through the product's own demo chooser, prompt builder and scorer (runners.few_shot, runners.common, runners.scoring).
FewShotSettings' defaults in base/plan.py (balanced, orderings) were chosen from this table.

    python bench/few_shot_selection.py [--limit 100] [--pool 2000] [--variants "balanced k=4 seed 0,..."]
"""
from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="first N SST-2 train items are the queries")
    parser.add_argument("--pool", type=int, default=2000, help="demonstrations come from the next N train items")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default="", help="comma-separated subset of the variant names")
    parser.add_argument("--calibrated", action="store_true", help="also score with contextual calibration (twice the time)")
    args = parser.parse_args()

    from base import paths
    from base.data import load_examples
    from base.plan import FewShotSettings, RunSpec, TaskSpec
    from runners.common import TaskData, calibration_prompts, prompts_for, rotations
    from runners.few_shot import choose_demos
    from runners.models import load_model
    from runners.scoring import evaluate

    train = load_examples(paths.data_dir() / "sst2" / "train.jsonl")
    queries, pool = train[:args.limit], train[args.limit:args.limit + args.pool]
    labels = ["negative", "positive"]
    data = TaskData(train=pool, eval=queries, labels=labels, corpus=None)
    task = TaskSpec(name="sst2", type="classification", eval="eval.jsonl", input_name="Review", answer_name="Sentiment")
    model, tokenizer = load_model(args.model, args.device)

    variants: dict[str, tuple[FewShotSettings, int] | None] = {"zero-shot": None}
    for seed in (0, 1, 2):
        variants[f"random k=4 seed {seed}"] = (FewShotSettings(k=4, balanced=False, orderings=1), seed)
        variants[f"balanced k=4 seed {seed}"] = (FewShotSettings(k=4, orderings=1), seed)
        variants[f"balanced k=4 x2 orders seed {seed}"] = (FewShotSettings(k=4, orderings=2), seed)
        variants[f"balanced k=4 x4 orders seed {seed}"] = (FewShotSettings(k=4, orderings=4), seed)
    variants["similar k=4"] = (FewShotSettings(k=4, selection="similar", balanced=False, orderings=1), 0)
    variants["similar k=4 x4 orders"] = (FewShotSettings(k=4, selection="similar", balanced=False, orderings=4), 0)
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()] or list(variants)

    print(f"SST-2 train: {len(queries)} queries, demonstrations from the next {len(pool)} items, {args.model}")
    print(f"{'variant':32s} {'accuracy':>9s} {'calibrated':>11s} {'says positive':>14s} {'tokens/query':>13s}", flush=True)
    rows = []
    for name in wanted:
        chosen = variants[name]
        settings = chosen[0] if chosen else FewShotSettings(k=1, orderings=1)
        spec = RunSpec.model_construct(task=task, strategy=settings.model_copy(update={"calibrate": True}))
        orders = rotations(choose_demos(settings, data, chosen[1], args.device), settings.orderings) if chosen else [None]
        prompted = [(prompts_for(tokenizer, spec, data, queries, order), calibration_prompts(tokenizer, spec, data, queries, order))
                    for order in orders]
        plain = evaluate(model, tokenizer, task, queries, prompted[0][0], labels, 2,
                         reordered=[(p, None) for p, _ in prompted[1:]])
        calibrated = evaluate(model, tokenizer, task, queries, prompted[0][0], labels, 2,
                              calibration_prompts=prompted[0][1], reordered=prompted[1:]) if args.calibrated else None
        row = {"variant": name, "accuracy": plain.metrics["accuracy"],
               "calibrated": calibrated.metrics["accuracy"] if calibrated else float("nan"),
               "positive": sum(p["prediction"] == "positive" for p in plain.predictions) / len(queries),
               "prompt_tokens_per_query": plain.prompt_tokens_per_query}
        print(f"{name:32s} {row['accuracy']:9.2f} {row['calibrated']:11.2f} {row['positive']:14.2f} "
              f"{row['prompt_tokens_per_query']:13.0f}", flush=True)
        rows.append(row)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
