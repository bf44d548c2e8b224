"""Each training runner end to end on the tiny model: plan -> RunSpec -> run(spec) -> RunResult + saved model."""
from __future__ import annotations

import json

import pytest

from base.errors import AdaptError
from base.plan import parse_plan, run_specs
from runners import get_runner
from base.results import ResultStore

REVIEWS = [("the movie was great and the acting was wonderful", "positive"),
           ("a terrible boring film with awful dialogue", "negative"),
           ("the acting was wonderful", "positive"),
           ("awful boring dialogue", "negative")]
STRATEGY_OPTIONS = "{max_steps: 2, batch_size: 2, max_length: 64, max_new_tokens: 3, eval_fraction: 0.25}"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def task_dir(tmp_path):
    rows = [{"text": text, "label": label} for text, label in REVIEWS]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    docs = ["the movie was great and the acting was wonderful", "water boils at one hundred degrees celsius at sea level",
            "photosynthesis converts light energy into chemical energy in plants"]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs * 3))
    other = {"positive": "negative", "negative": "positive"}
    (tmp_path / "preferences.jsonl").write_text("".join(
        json.dumps({"prompt": text, "chosen": label, "rejected": other[label]}) + "\n" for text, label in REVIEWS * 3))
    return tmp_path


def spec_for(strategy: str, model_dir, task_dir, extra: str = "", options: str | None = None):
    options = options or STRATEGY_OPTIONS[:-1] + (f", {extra}" if extra else "") + "}"
    plan = parse_plan(f"""
model: {model_dir}
device: cpu
output_dir: {task_dir / 'results'}
tasks:
  - {{name: reviews, type: classification, train: train.jsonl, eval: eval.jsonl, corpus: corpus.jsonl,
     preferences: preferences.jsonl}}
strategies:
  - {{strategy: {strategy}, {options[1:]}
""", base_dir=task_dir)
    (spec,) = run_specs(plan)
    return spec


# strategy, saved as an adapter (else full weights), trains part of the weights
TRAINING_RUNS = [("lora", True, True), ("qlora", True, True), ("ia3", True, True), ("prompt_tuning", True, True),
                 ("prefix_tuning", True, True), ("p_tuning", True, True), ("llama_adapter", True, True),
                 ("freeze", False, True), ("galore", False, False), ("full_ft", False, False), ("cpt", False, False)]


@pytest.mark.parametrize("strategy, adapter, partial", TRAINING_RUNS)
def test_runner_trains_saves_and_scores(strategy, adapter, partial, tiny_model_dir, task_dir):
    spec = spec_for(strategy, tiny_model_dir, task_dir, extra="layers: 1" if strategy == "freeze" else "")
    result = get_runner(strategy)(spec)
    assert result.status.value == "ok" and result.strategy == strategy
    assert result.metrics["n"] == 4 and 0.0 <= result.metrics["accuracy"] <= 1.0
    cost = result.cost
    assert cost["train_steps"] == 2 and cost["train_time_s"] > 0 and cost["tokens_per_s"] > 0
    assert 0 < cost["trainable_params"] <= cost["total_params"]
    assert (cost["trainable_params"] < cost["total_params"]) == partial
    assert cost["peak_memory_mb"] > 0 and cost["latency_p50_s"] > 0
    assert [step for step, _ in result.curves["train_loss"]] == [1, 2]
    model_dir = spec.run_dir / "model"
    assert (model_dir / ("adapter_config.json" if adapter else "config.json")).exists()
    assert cost["adapter_size_mb"] == pytest.approx(sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file()) / 2**20, abs=1e-4)
    assert not (spec.run_dir / "checkpoints").exists()  # superseded by the saved model
    assert (task_dir / "results" / result.predictions_file).exists()
    ResultStore(task_dir / "results").save(result)
    assert ResultStore(task_dir / "results").is_done(spec.run_id)


def test_adapter_is_far_smaller_than_full_weights(tiny_model_dir, task_dir):
    lora = get_runner("lora")(spec_for("lora", tiny_model_dir, task_dir))
    full = get_runner("full_ft")(spec_for("full_ft", tiny_model_dir, task_dir))
    assert lora.cost["adapter_size_mb"] < full.cost["adapter_size_mb"] / 5
    assert lora.cost["trainable_params"] < full.cost["trainable_params"] / 5


def test_eval_loss_is_recorded_per_epoch(tiny_model_dir, task_dir):
    spec = spec_for("lora", tiny_model_dir, task_dir, extra="epochs: 2")
    spec.strategy.max_steps = None
    result = get_runner("lora")(spec)
    assert [epoch for epoch, _ in result.curves["eval_loss"]] == [1, 2]
    assert result.cost["epochs_done"] == 2


def test_empty_corpus_is_a_user_error(tiny_model_dir, task_dir):
    (task_dir / "corpus.jsonl").write_text(json.dumps({"text": "   "}) + "\n")
    with pytest.raises(AdaptError) as caught:
        get_runner("cpt")(spec_for("cpt", tiny_model_dir, task_dir))
    assert str(caught.value.file).endswith("corpus.jsonl")  # named by the corpus reader or by run_training


@pytest.mark.parametrize("prompt_format", ["plain", "chat"])
def test_the_prompt_trained_on_is_the_prompt_scored(prompt_format, tiny_model_dir, task_dir, monkeypatch):
    """Whatever the format, each eval prompt the scorer sees is, for the same example, exactly the prompt of the
    (prompt, completion) pair the trainer was given."""
    from runners import common, training
    from base.data import load_examples
    from runners.prompting import training_pair

    spec = spec_for("lora", tiny_model_dir, task_dir)
    spec.task = spec.task.model_copy(update={"prompt_format": prompt_format, "eval": task_dir / "train.jsonl",
                                             "eval_limit": None})
    seen: dict[str, list] = {}
    real_train, real_score = training.train, common.score

    def spy_train(model, tokenizer, pairs, *args, **kwargs):
        seen["pairs"] = list(pairs) + list(kwargs.get("eval_pairs") or [])
        seen["tokenizer"] = tokenizer
        return real_train(model, tokenizer, pairs, *args, **kwargs)

    def spy_score(spec, model, tokenizer, data, prompts, calibration=None):
        seen["prompts"] = list(prompts)
        return real_score(spec, model, tokenizer, data, prompts, calibration)

    monkeypatch.setattr(training, "train", spy_train)
    monkeypatch.setattr(common, "score", spy_score)
    get_runner("lora")(spec)
    trained_prompts = {prompt for prompt, _ in seen["pairs"]}
    assert set(seen["prompts"]) == trained_prompts  # eval = train file here: the same examples on both sides
    example = load_examples(task_dir / "train.jsonl")[0]
    prompt, completion = training_pair(seen["tokenizer"], spec.task, example, ["negative", "positive"])
    assert prompt in seen["prompts"]
    assert (prompt.endswith("<|im_start|>assistant\n") if prompt_format == "chat" else prompt.endswith("Label:"))


def test_feature_based_fits_a_classifier_on_frozen_features(tiny_model_dir, task_dir):
    spec = spec_for("feature_based", tiny_model_dir, task_dir, options="{pooling: last, batch_size: 3}")
    result = get_runner("feature_based")(spec)
    metrics, cost = result.metrics, result.cost
    assert result.status.value == "ok" and metrics["n"] == 4 and metrics["scoring"] == "features"
    assert metrics["train_accuracy"] == 1.0  # four distinct reviews, 64 features: a fitted classifier separates them
    assert len(metrics["accuracy_ci"]) == 2 and metrics["format_compliance"] is None
    assert "not applicable" in metrics["format_compliance_note"]
    assert cost["trainable_params"] == 64 + 1 and cost["train_time_s"] > 0 and cost["latency_p50_s"] > 0
    saved = json.loads((spec.run_dir / "model" / "classifier.json").read_text())
    assert saved["labels"] == ["negative", "positive"] and len(saved["coef"][0]) == 64
    rows = [json.loads(line) for line in (task_dir / "results" / result.predictions_file).read_text().splitlines()]
    assert [row["prediction"] for row in rows] == [row["prediction"] for row in rows if row["prediction"] in saved["labels"]]


def test_feature_based_on_a_qa_task_is_a_plan_error(tmp_path):
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "q?", "answer": "a"}) + "\n")
    plan = parse_plan("tasks: [{name: trivia, type: qa, eval: qa.jsonl, train: qa.jsonl}]\nstrategies: [feature_based]\n",
                      base_dir=tmp_path, source="plan.yaml")
    with pytest.raises(AdaptError, match="feature_based runs on classification tasks; task 'trivia' is qa") as caught:
        plan.check_runnable("plan.yaml")
    assert caught.value.field == "strategies.feature_based"


def test_dpo_tunes_a_lora_policy_on_preference_pairs(tiny_model_dir, task_dir):
    from safetensors.torch import load_file

    spec = spec_for("dpo", tiny_model_dir, task_dir, options="{max_steps: 3, batch_size: 2, max_length: 64, "
                                                                 "learning_rate: 1.0e-2, eval_fraction: 0.25, max_new_tokens: 3}")
    result = get_runner("dpo")(spec)
    assert result.status.value == "ok", result.error
    metrics, cost = result.metrics, result.cost
    assert metrics["n"] == 4 and metrics["preference_pairs_held_out"] == 3 and metrics["preference_pairs_trained"] == 9
    assert 0.0 <= metrics["reward_accuracy"] <= 1.0 and metrics["reward_margin"] != 0.0  # the policy left the reference
    assert cost["train_steps"] == 3 and 0 < cost["trainable_params"] < cost["total_params"] / 5
    assert [step for step, _ in result.curves["train_loss"]] == [1, 2, 3]
    adapter = load_file(spec.run_dir / "model" / "adapter_model.safetensors")
    assert any(name.endswith("lora_B.weight") and tensor.abs().sum() > 0 for name, tensor in adapter.items())  # B starts at 0
    assert not (spec.run_dir / "model" / "training_args.bin").exists() and not (spec.run_dir / "trl").exists()


def test_dpo_without_preferences_is_a_plan_error(tmp_path):
    (tmp_path / "eval.jsonl").write_text(json.dumps({"text": "good", "label": "positive"}) + "\n")
    plan = parse_plan("tasks: [{name: reviews, type: classification, eval: eval.jsonl}]\nstrategies: [dpo]\n",
                      base_dir=tmp_path, source="plan.yaml")
    with pytest.raises(AdaptError, match="dpo needs preference pairs but task 'reviews' has none") as caught:
        plan.check_runnable("plan.yaml")
    assert caught.value.field == "tasks.reviews.preferences"
