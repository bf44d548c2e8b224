"""The plain-script side of the parity check: transformers + peft only, no adaptlab code.

Scores SST-2 zero-shot and k-shot by label log-likelihood after a completion-style prompt, then trains LoRA with
the stated settings and scores it the same way. `bench/parity.py` runs this beside `adapt compare` on the same
items and settings; either side can be run alone:

    python bench/parity_plain.py --data ~/.cache/adaptlab/data/sst2 --model ~/.cache/adaptlab/models/smollm2-135m-instruct
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

LABELS = ["negative", "positive"]


def read(path, limit):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    return rows[:limit] if limit else rows


def block(row, answer=None, names=("Review", "Sentiment")):
    return f"{names[0]}: {row['text']}\n{names[1]}:" + (f" {answer}" if answer is not None else "")


def label_scores(model, tokenizer, prompt):
    """Sum log-prob of each label after the prompt, one unpadded forward per label (the plainest definition)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    scores = []
    for label in LABELS:
        label_ids = tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + label_ids])).logits[0]
        logprobs = torch.log_softmax(logits.float(), -1)
        scores.append(sum(float(logprobs[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(label_ids)))
    return scores


def accuracy(model, tokenizer, prompts, gold, orders=None):
    """`orders`: more prompt lists (the same items, demonstrations in other orders) whose scores are averaged in."""
    model.eval()
    score_sets = [[label_scores(model, tokenizer, p) for p in order] for order in [prompts, *(orders or [])]]
    averaged = [[sum(values) / len(score_sets) for values in zip(*rows)] for rows in zip(*score_sets)]
    predicted = [LABELS[max(range(2), key=s.__getitem__)] for s in averaged]
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold), sum(p == "positive" for p in predicted) / len(gold)


def balanced_demos(train, n_eval, k, seed):
    """Per eval item: a seeded shuffle of the train pool, first k with at most ceil(k/2) per label."""
    rng = random.Random(seed)
    demos = []
    for _ in range(n_eval):
        order, counts, picked = rng.sample(range(len(train)), len(train)), {}, []
        for i in order:
            label = train[i]["label"]
            if counts.get(label, 0) < math.ceil(k / 2):
                counts[label] = counts.get(label, 0) + 1
                picked.append(i)
                if len(picked) == k:
                    break
        demos.append([train[i] for i in picked])
    return demos


def train_lora(model, tokenizer, train, args):
    model = get_peft_model(model, LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"))
    examples = []
    for row in train:
        prompt = tokenizer(block(row), add_special_tokens=False)["input_ids"]
        answer = tokenizer(f" {row['label']}{tokenizer.eos_token}", add_special_tokens=False)["input_ids"]
        examples.append((prompt + answer, [-100] * len(prompt) + answer))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    losses = []
    for _ in range(args.epochs):
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order), args.batch):
            batch = [examples[i] for i in order[start:start + args.batch]]
            width = max(len(ids) for ids, _ in batch)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss))
    return model, losses


def add_settings(parser: argparse.ArgumentParser) -> None:
    """The settings both sides of the parity check share (bench/parity.py passes them to each)."""
    parser.add_argument("--eval-limit", type=int, default=100)
    parser.add_argument("--train-limit", type=int, default=400)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--orderings", type=int, default=4,
                        help="few-shot: average label log-probs over this many rotations of the demonstrations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--alpha", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with train.jsonl and eval.jsonl ({text, label})")
    parser.add_argument("--model", required=True, help="a local Hugging Face model folder")
    add_settings(parser)
    parser.add_argument("--skip", nargs="*", default=[], choices=["zero_shot", "few_shot", "lora"])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    evaluation = read(f"{args.data}/eval.jsonl", args.eval_limit)
    train = read(f"{args.data}/train.jsonl", args.train_limit)
    gold = [row["label"] for row in evaluation]
    results = {}
    if "zero_shot" not in args.skip:
        started = time.time()
        acc, positive = accuracy(model, tokenizer, [block(row) for row in evaluation], gold)
        results["zero_shot"] = {"accuracy": acc, "predicted_positive": positive, "seconds": time.time() - started}
    if "few_shot" not in args.skip:
        started = time.time()
        demos = balanced_demos(train, len(evaluation), args.k, args.seed)
        orders = [["\n\n".join([block(d, d["label"]) for d in row_demos[shift:] + row_demos[:shift]] + [block(row)])
                   for row, row_demos in zip(evaluation, demos)] for shift in range(min(args.orderings, args.k))]
        acc, positive = accuracy(model, tokenizer, orders[0], gold, orders[1:])
        results["few_shot"] = {"accuracy": acc, "predicted_positive": positive, "seconds": time.time() - started}
    if "lora" not in args.skip:
        started = time.time()
        tuned, losses = train_lora(model, tokenizer, train, args)
        acc, positive = accuracy(tuned, tokenizer, [block(row) for row in evaluation], gold)
        results["lora"] = {"accuracy": acc, "predicted_positive": positive, "seconds": time.time() - started,
                           "steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1]}
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
