"""Every method added for issue 14 on the real embedded model and real SST-2 items, a few steps each, end to end
through `adapt compare`: each gets a result with metrics, measured cost and a trainable count equal to peft's own."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from base.plan import FreezeSettings, LlamaAdapterSettings, LoraSettings, PrefixTuningSettings, PTuningSettings
from base.results import ResultStore, RunStatus
from cli.app import app
from tests.conftest import bundled_data_path

pytestmark = pytest.mark.integration

STEPS = "max_steps: 3, batch_size: 4, max_length: 96, max_new_tokens: 4"
# label -> (plan entry, the settings whose model peft counts; None where the runner's own count is checked otherwise)
RUNS = {
    "feature_based": ("{strategy: feature_based}", None),
    "lora-dora": (f"{{strategy: lora, label: lora-dora, use_dora: true, {STEPS}}}", LoraSettings(use_dora=True)),
    "lora-rslora": (f"{{strategy: lora, label: lora-rslora, use_rslora: true, {STEPS}}}", LoraSettings(use_rslora=True)),
    "lora-pissa": (f"{{strategy: lora, label: lora-pissa, init: pissa, {STEPS}}}", LoraSettings(init="pissa")),
    "prefix_tuning": (f"{{strategy: prefix_tuning, {STEPS}}}", PrefixTuningSettings()),
    "p_tuning": (f"{{strategy: p_tuning, {STEPS}}}", PTuningSettings()),
    "llama_adapter": (f"{{strategy: llama_adapter, {STEPS}}}", LlamaAdapterSettings()),
    "freeze": (f"{{strategy: freeze, layers: 2, {STEPS}}}", None),
    "galore": (f"{{strategy: galore, rank: 64, {STEPS}}}", None),
    "full_ft": (f"{{strategy: full_ft, {STEPS}}}", None),
    "dpo": ("{strategy: dpo, max_steps: 3, batch_size: 2, max_length: 96, max_new_tokens: 4, eval_fraction: 0.25}",
            LoraSettings()),
}


def test_every_new_method_runs_on_the_embedded_model(tmp_path, real_model_path):
    from runners.adapters import peft_model
    from runners.freeze import last_blocks_trainable
    from runners.llama_adapter import llama_adapter_model
    from runners.models import load_model

    data = bundled_data_path("sst2")
    other = {"positive": "negative", "negative": "positive"}  # SST-2 train rows as pairs, as the sst2_preferences bundle
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()[:16]]
    (tmp_path / "preferences.jsonl").write_text("".join(
        json.dumps({"prompt": r["text"], "chosen": r["label"], "rejected": other[r["label"]]}) + "\n" for r in rows))
    plan = tmp_path / "plan.yaml"
    strategies = "\n".join(f"  - {entry}" for entry, _ in RUNS.values())
    plan.write_text(f"""\
model: {real_model_path}
output_dir: out
tasks:
  - {{name: sst2, type: classification, train: {data}/train.jsonl, eval: {data}/eval.jsonl, labels: [negative, positive],
     preferences: preferences.jsonl, eval_limit: 12, train_limit: 40}}
strategies:
{strategies}
forgetting:
  enabled: false
""")
    result = CliRunner().invoke(app, ["compare", str(plan)])
    assert result.exit_code == 0, result.output
    runs = {r.label: r for r in ResultStore(tmp_path / "out").all()}
    assert {label: r.status for label, r in runs.items()} == dict.fromkeys(RUNS, RunStatus.ok), \
        {label: r.error for label, r in runs.items()}
    for label, run in runs.items():
        assert run.metrics["n"] == 12 and 0 <= run.metrics["accuracy"] <= 1, label
        assert run.cost["train_time_s"] > 0 and run.cost["peak_memory_mb"] > 0, label
        if label != "feature_based":
            assert len(run.curves["train_loss"]) == 3, label

    for label, (_, settings) in RUNS.items():
        if settings is None:
            continue
        model, _ = load_model(str(real_model_path), "cpu", "float32")
        build = llama_adapter_model if label == "llama_adapter" else peft_model
        assert runs[label].cost["trainable_params"] == build(model, settings).get_nb_trainable_parameters()[0], label

    model, _ = load_model(str(real_model_path), "cpu", "float32")
    total = sum(p.numel() for p in model.parameters())
    last_blocks_trainable(model, FreezeSettings(layers=2))
    assert runs["freeze"].cost["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert runs["galore"].cost["trainable_params"] == runs["full_ft"].cost["trainable_params"] == total
    assert runs["galore"].cost["peak_memory_mb"] < runs["full_ft"].cost["peak_memory_mb"]  # moments in rank 64
    assert runs["feature_based"].metrics["format_compliance"] is None
    assert 0 <= runs["dpo"].metrics["reward_accuracy"] <= 1 and runs["dpo"].metrics["preference_pairs_held_out"] == 4
    assert runs["feature_based"].cost["trainable_params"] == model.config.hidden_size + 1
