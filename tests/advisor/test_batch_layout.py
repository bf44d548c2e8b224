"""The estimate's micro-batch layout (advisor.estimate.tokens_per_batch) against the one the training loop builds
(runners.training.plan_batches) on real SST-2 pairs and the embedded model's tokenizer: peak memory is sized from the
largest micro-batch and train time from the mean one, so the two must agree for the estimates to hold."""
from __future__ import annotations

import statistics

import pytest

from advisor import estimate as est
from advisor.engine import PLAN_BATCH, max_length_for, pair_tokens
from advisor.questions import Answers
from base.plan import parse_plan, run_specs

PLAN = """
name: layout
model: {model}
tasks:
  - name: sst2
    type: classification
    train: "{{data}}/sst2/train.jsonl"
    eval: "{{data}}/sst2/eval.jsonl"
    train_limit: 160
strategies: [lora]
"""
EPOCHS = 3


@pytest.fixture(scope="module")
def sst2_sequences(real_model_path):
    """The 144 trained pairs of a 160-example SST-2 run (10% held out), tokenized as the training loop does."""
    from runners.common import load_task_data
    from runners.models import load_tokenizer
    from runners.prompting import training_pair
    from runners.training import encode_pairs, split_held_out

    [spec] = run_specs(parse_plan(PLAN.format(model=real_model_path)), "cpu")
    data = load_task_data(spec)
    tokenizer = load_tokenizer(str(real_model_path))
    pairs = [training_pair(tokenizer, spec.task, example, data.labels) for example in data.train]
    trained, _ = split_held_out(pairs, spec.strategy.eval_fraction, spec.seed)
    return [(prompt, answer) for prompt, answer in trained], tokenizer


def loop_layout(sequences, batch: int, max_length: int, packed: bool = True) -> tuple[float, int, float]:
    """Mean and largest positions (rows x width) of the micro-batches of EPOCHS epochs, and the mean example length."""
    import torch

    from runners.training import collate, plan_batches

    sizes = []
    for epoch in range(EPOCHS):
        for rows in plan_batches(sequences, batch, max_length, packed, torch.Generator().manual_seed(epoch)):
            sizes.append(collate(sequences, rows, 0, packed)["input_ids"].numel())
    return statistics.mean(sizes), max(sizes), statistics.mean(len(s.input_ids) for s in sequences)


@pytest.mark.parametrize("batch,max_length", [(8, 512), (8, 256), (4, 128), (16, 512)])
def test_estimated_mean_and_largest_micro_batch_match_the_training_loop(sst2_sequences, batch, max_length):
    from runners.training import encode_pairs

    pairs, tokenizer = sst2_sequences
    mean, largest, example = loop_layout(encode_pairs(tokenizer, pairs, max_length), batch, max_length)
    setup = est.TrainSetup(batch=batch, seq_len=max_length, example_tokens=example)
    assert est.tokens_per_batch(setup) == pytest.approx(mean, rel=0.03)
    assert est.tokens_per_batch(setup, peak=True) == pytest.approx(largest, rel=0.06)


def test_unpacked_rows_are_padded_to_the_longest_of_their_group(sst2_sequences):
    from runners.training import encode_pairs

    pairs, tokenizer = sst2_sequences
    mean, largest, example = loop_layout(encode_pairs(tokenizer, pairs, 256), 8, 256, packed=False)
    setup = est.TrainSetup(batch=8, seq_len=256, example_tokens=example, packing=False)
    assert est.tokens_per_batch(setup) == pytest.approx(mean, rel=0.12)
    assert est.tokens_per_batch(setup, peak=True) == pytest.approx(largest, rel=0.15)


def test_the_advised_row_length_holds_every_example_whole(sst2_sequences):
    """The max_length `advise` writes truncates no example, and its packed micro-batches are their tokens."""
    from runners.training import encode_pairs

    pairs, tokenizer = sst2_sequences
    answers = Answers(task_type="classification", avg_example_tokens=25, labelled_examples=160)
    max_length = max_length_for(answers)
    sequences = encode_pairs(tokenizer, pairs, max_length)
    mean, largest, example = loop_layout(sequences, PLAN_BATCH, max_length)
    assert max(len(s.input_ids) for s in sequences) < est.longest_example(example) <= max_length
    assert mean == pytest.approx(PLAN_BATCH * example, rel=0.02)
    assert pair_tokens(answers) == pytest.approx(example, rel=0.1)  # the answer (25) plus the plain format's tokens
