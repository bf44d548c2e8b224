"""Forgetting checks: paired statistics, lm-eval plumbing on a tiny model, the base cache, perplexity, and
(integration) a LoRA trained hard on narrow data that measurably forgets on real benchmarks."""
from __future__ import annotations

import json
import math
import time

import pytest

from base import paths
from base.errors import AdaptError
from base.plan import ForgettingSettings
from runners import forgetting
from runners.forgetting import ItemScores, compare_items, paired_bootstrap, retained
from tests.runners.conftest import ROWS, TEXTS


@pytest.fixture()
def lm_eval_calls(monkeypatch):
    """Count calls to lm_eval.simple_evaluate (the real one still runs) and the tasks each asked for."""
    import lm_eval

    calls: list[list[str]] = []
    real = lm_eval.simple_evaluate

    def spy(*args, **kwargs):
        calls.append(list(kwargs["tasks"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", spy)
    return calls


# --- statistics ------------------------------------------------------------------------------------------


def test_paired_bootstrap_is_zero_width_for_identical_vectors():
    vector = [1.0, 0.0] * 10
    assert paired_bootstrap(vector, vector) == (0.0, 0.0)


def test_paired_bootstrap_interval_matches_the_normal_approximation():
    base = [1.0] * 10 + [0.0] * 10
    adapted = [0.0] * 20  # lost every item base got right: per-item difference -1 on half the items
    low, high = paired_bootstrap(base, adapted)
    # mean difference -0.5, standard error sqrt(.5 * .5 / 20) = 0.112 -> about [-0.72, -0.28]
    assert low < -0.5 < high < 0
    assert abs(low - (-0.5 - 1.96 * 0.112)) < 0.06 and abs(high - (-0.5 + 1.96 * 0.112)) < 0.06
    assert paired_bootstrap(base, adapted) == (low, high)  # seeded: reproducible


def test_paired_bootstrap_pairs_items_rather_than_resampling_each_model_alone():
    # same items flipped by one step: unpaired resampling would give a wide interval around 0.05
    base = [1.0] * 10 + [0.0] * 10
    adapted = [1.0] * 11 + [0.0] * 9
    low, high = paired_bootstrap(base, adapted)
    assert low == 0.0 and 0.04 < high <= 0.15


def test_paired_bootstrap_rejects_unequal_vectors():
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 0.0], [1.0])


def items(correct: list[float], metric: str = "acc") -> ItemScores:
    return ItemScores("demo", metric, [f"t:{i}" for i in range(len(correct))], correct)


def test_dropped_only_when_the_interval_lies_below_zero():
    base = items([1.0] * 30 + [0.0] * 10)
    clear_drop = compare_items(base, items([1.0] * 10 + [0.0] * 30))
    assert clear_drop["dropped"] is True and clear_drop["ci_high"] < 0
    assert clear_drop["delta"] == pytest.approx(-0.5) and clear_drop["n"] == 40 and clear_drop["metric"] == "acc"
    noise = compare_items(base, items([1.0] * 28 + [0.0] * 10 + [1.0, 1.0]))  # two lost, two gained
    assert noise["dropped"] is False and noise["ci_low"] < 0 < noise["ci_high"]
    gain = compare_items(items([0.0] * 40), items([1.0] * 20 + [0.0] * 20))
    assert gain["dropped"] is False and gain["ci_low"] > 0


def test_compare_items_refuses_unpaired_items():
    with pytest.raises(RuntimeError, match="different items"):
        compare_items(items([1.0, 0.0]), ItemScores("demo", "acc", ["t:0", "t:5"], [1.0, 0.0]))


def test_retained_is_the_mean_ratio_and_skips_zero_bases():
    rows = {"a": {"base": 0.5, "adapted": 0.25}, "b": {"base": 0.8, "adapted": 0.8}, "c": {"base": 0.0, "adapted": 0.3}}
    assert retained(rows) == pytest.approx(0.75)
    assert retained({"c": {"base": 0.0, "adapted": 0.3}}) is None


# --- shipped task YAMLs -----------------------------------------------------------------------------------


def test_every_shipped_task_yaml_loads_its_data_through_lm_eval(bench_data):
    names = forgetting.bundled_benchmarks()
    assert names == sorted(["arc_easy", "arc_challenge", "hellaswag", "winogrande", "piqa", "boolq", "mmlu"])
    assert ForgettingSettings().benchmarks and set(ForgettingSettings().benchmarks) == set(names)
    with forgetting.task_manager(names) as manager:
        loaded = manager.load([forgetting.lm_eval_name(name) for name in names])["tasks"]
    assert len(loaded) == len(names)
    for name in names:
        task = loaded[forgetting.lm_eval_name(name)]
        docs = list(task.test_docs())
        assert len(docs) == len(ROWS)
        assert task.doc_to_text(docs[0]) == ROWS[0]["query"] and task.doc_to_choice(docs[0]) == ROWS[0]["choices"]
        assert forgetting.headline_metric(name) in ("acc", "acc_norm")


# --- the check on a tiny model ----------------------------------------------------------------------------


def test_check_forgetting_scores_pairs_and_caches_the_base(bench_data, tiny_model_dir, tiny_model, tiny_tokenizer, tmp_path,
                                                           lm_eval_calls):
    import torch

    settings = ForgettingSettings(benchmarks=["arc_easy", "boolq"], limit=3)
    cache = tmp_path / "base-cache"
    same = forgetting.check_forgetting(str(tiny_model_dir), tiny_model_dir, settings, "cpu", cache, tokenizer=tiny_tokenizer)
    assert len(lm_eval_calls) == 4  # base and adapted, per benchmark
    assert same["limit"] == 3 and set(same["benchmarks"]) == {"arc_easy", "boolq"}
    for name, row in same["benchmarks"].items():
        assert 0.0 <= row["base"] <= 1.0 and row["n"] == 3
        assert row["adapted"] == row["base"] and row["delta"] == 0.0 and row["dropped"] is False  # same weights
        assert row["metric"] == forgetting.headline_metric(name)
    assert same["perplexity"]["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert same["perplexity"]["base"] > 1.0
    assert len(list(cache.glob("*.json"))) == 3  # two benchmarks and the perplexity

    other = tiny_model  # the same weights as tiny_model_dir until perturbed
    torch.manual_seed(1)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    other.train()
    changed = forgetting.check_forgetting(str(tiny_model_dir), other, settings, "cpu", cache, tokenizer=tiny_tokenizer)
    assert len(lm_eval_calls) == 6  # only the adapted model ran: the base came from the cache
    assert other.training  # handed back in the mode it came in
    for name in settings.benchmarks:
        assert changed["benchmarks"][name]["base"] == same["benchmarks"][name]["base"]
    assert changed["perplexity"]["base"] == same["perplexity"]["base"]
    assert changed["perplexity"]["ratio"] != pytest.approx(1.0, abs=1e-6)


def test_adapter_folder_is_applied_on_the_base(bench_data, tiny_model_dir, tiny_model, tiny_tokenizer, tmp_path):
    """A fresh LoRA (B = 0) changes nothing; the same adapter with B perturbed changes the perplexity."""
    import torch
    from peft import LoraConfig, get_peft_model

    settings = ForgettingSettings(benchmarks=["piqa"], limit=4)
    peft_model = get_peft_model(tiny_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(tmp_path / "fresh")
    result = forgetting.check_forgetting(str(tiny_model_dir), tmp_path / "fresh", settings, "cpu", tmp_path / "c", tokenizer=tiny_tokenizer)
    assert result["perplexity"]["ratio"] == pytest.approx(1.0, abs=1e-5)
    assert result["benchmarks"]["piqa"]["delta"] == 0.0
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)
    peft_model.save_pretrained(tmp_path / "moved")
    moved = forgetting.check_forgetting(str(tiny_model_dir), tmp_path / "moved", settings, "cpu", tmp_path / "c", tokenizer=tiny_tokenizer)
    assert moved["perplexity"]["ratio"] != pytest.approx(1.0, abs=1e-3)


def test_perplexity_of_uniform_predictions_is_the_vocabulary_size(tiny_model, tiny_tokenizer):
    import torch

    with torch.no_grad():
        tiny_model.get_output_embeddings().weight.zero_()  # every logit 0: each token has probability 1/V
    value = forgetting.perplexity(tiny_model, tiny_tokenizer, TEXTS)
    assert value == pytest.approx(tiny_model.config.vocab_size, rel=1e-4)


def test_perplexity_truncates_to_max_tokens(tiny_model, tiny_tokenizer):
    long_text = " ".join(TEXTS * 10)
    assert len(tiny_tokenizer(long_text)["input_ids"]) > 16
    short = forgetting.perplexity(tiny_model, tiny_tokenizer, [long_text], max_tokens=16)
    head = tiny_tokenizer.decode(tiny_tokenizer(long_text)["input_ids"][:16])
    assert short == pytest.approx(forgetting.perplexity(tiny_model, tiny_tokenizer, [head]), rel=1e-4)


# --- user errors and the CLI ------------------------------------------------------------------------------


def test_adapted_path_that_is_no_model_is_a_user_error(bench_data, tmp_path, tiny_model_dir):
    settings = ForgettingSettings(benchmarks=["arc_easy"], limit=2)
    with pytest.raises(AdaptError, match="not found"):
        forgetting.check_forgetting(str(tiny_model_dir), tmp_path / "nope", settings, "cpu", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdaptError, match="adapter_config.json"):
        forgetting.check_forgetting(str(tiny_model_dir), tmp_path / "empty", settings, "cpu", tmp_path)


def test_missing_general_text_and_bad_rows_name_the_file(bench_data, tmp_path, tiny_model_dir):
    settings = ForgettingSettings(benchmarks=["arc_easy"], limit=2)
    text_file = paths.data_dir() / "general_text.jsonl"
    text_file.write_text('{"id": "1", "text": "fine"}\n{"id": "2", "body": "no text"}\n', encoding="utf-8")
    with pytest.raises(AdaptError) as error:
        forgetting.check_forgetting(str(tiny_model_dir), tiny_model_dir, settings, "cpu", tmp_path)
    assert error.value.line == 2 and error.value.field == "text" and error.value.file == str(text_file)
    text_file.unlink()
    with pytest.raises(AdaptError, match="perplexity"):
        forgetting.check_forgetting(str(tiny_model_dir), tiny_model_dir, settings, "cpu", tmp_path)


def test_missing_benchmark_data_that_cannot_be_provisioned_says_how_to_fix(tmp_path, tiny_model_dir, monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "runners.bundled", types.SimpleNamespace(ensure_datasets=lambda names: None))
    settings = ForgettingSettings(benchmarks=["arc_easy"], limit=2, perplexity=False)
    with pytest.raises(AdaptError) as error:
        forgetting.check_forgetting(str(tiny_model_dir), tiny_model_dir, settings, "cpu", tmp_path)
    assert "arc_easy" in error.value.message and "adapt data ensure" in error.value.hint


def test_adapt_forget_prints_the_table_and_writes_json(bench_data, tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    out = tmp_path / "forget.json"
    done = CliRunner().invoke(app, ["forget", "--adapted", str(tiny_model_dir), "--base", str(tiny_model_dir),
                                    "-b", "winogrande", "--limit", "2", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "winogrande" in done.output and "retained" in done.output
    data = json.loads(out.read_text())
    assert data["limit"] == 2 and data["benchmarks"]["winogrande"]["n"] == 2
    assert (paths.home() / "forgetting-cache").is_dir()
    bad = CliRunner().invoke(app, ["forget", "--adapted", str(tmp_path / "missing"), "--base", str(tiny_model_dir)])
    assert bad.exit_code == 2 and "not found" in bad.output


# --- integration: the real model forgets ------------------------------------------------------------------


def train_narrow_lora(model, tokenizer, steps: int, learning_rate: float):
    """A LoRA hammered on one repetitive sentence: the textbook way to make a small model forget."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]))
    batch = tokenizer(["The answer is always banana. Banana banana banana."] * 4, return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=learning_rate)
    peft_model.train()
    for _ in range(steps):
        loss = peft_model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return peft_model, loss.item()


@pytest.mark.integration
def test_lora_trained_hard_on_narrow_data_forgets(real_model_path, tmp_path):
    from runners.models import load_model, model_digest

    benchmarks = ["arc_easy", "piqa"]  # 100 items each: drops seen at 60 items (0.37 -> 0.25) were within noise
    for name in benchmarks:
        if not (forgetting.benchmarks_dir() / f"{name}.jsonl").exists():
            try:
                forgetting.ensure_benchmark_data([name])
            except AdaptError as exc:
                pytest.skip(f"bundled benchmark {name!r} not provisioned: {exc.message}")
    settings = ForgettingSettings(benchmarks=benchmarks, limit=100, perplexity=forgetting.general_text_path().exists())
    model, tokenizer = load_model(str(real_model_path), "cpu")
    started = time.perf_counter()
    adapted, final_loss = train_narrow_lora(model, tokenizer, steps=60, learning_rate=3e-3)
    train_s = time.perf_counter() - started
    assert final_loss < 0.5, "the narrow data was not learnt"
    result = forgetting.check_forgetting(str(real_model_path), adapted, settings, "cpu", tmp_path / "cache", tokenizer=tokenizer)
    rows = result["benchmarks"]
    print({name: (row["base"], row["adapted"], row["ci_low"], row["ci_high"]) for name, row in rows.items()},
          result["retained"], result["perplexity"], f"train {train_s:.1f}s")
    assert any(row["dropped"] for row in rows.values()), rows
    assert result["retained"] < 0.95
    if result["perplexity"]:
        assert result["perplexity"]["ratio"] > 1.5

    # the cached base scores are what a fresh base model scores now (training wrapped a different object)
    fresh, _ = load_model(str(real_model_path), "cpu")
    with forgetting.task_manager(["arc_easy"]) as manager, forgetting.quiet_lm_eval():
        again = forgetting.run_benchmark(forgetting.wrap_model(fresh.eval(), tokenizer), "arc_easy", settings.limit, manager)
    cached = forgetting.BaseCache(tmp_path / "cache", model_digest(str(real_model_path)))
    entry = cached.get("arc_easy", settings.limit, forgetting.task_digest("arc_easy"))
    assert entry is not None and entry["correct"] == again.correct
    assert again.score == pytest.approx(rows["arc_easy"]["base"])
    assert math.isfinite(rows["arc_easy"]["ci_low"])
