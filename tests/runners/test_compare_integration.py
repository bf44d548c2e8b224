"""A 2-strategy plan on the real embedded model and real bundled data, end to end through `adapt compare`."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app
from base.results import ResultStore, RunStatus
from tests.conftest import bundled_data_path

pytestmark = pytest.mark.integration


def test_zero_shot_and_lora_on_sst2(tmp_path, real_model_path):
    data = bundled_data_path("sst2")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
model: {real_model_path}
output_dir: out
tasks:
  - name: sst2
    type: classification
    train: {data}/train.jsonl
    eval: {data}/eval.jsonl
    labels: [negative, positive]
    eval_limit: 12
    train_limit: 48
strategies:
  - strategy: zero_shot
    max_new_tokens: 4
  - strategy: lora
    max_steps: 3
    batch_size: 4
    max_length: 128
    learning_rate: 1.0e-3
    max_new_tokens: 4
forgetting:
  enabled: false
""")
    result = CliRunner().invoke(app, ["compare", str(plan)])
    assert result.exit_code == 0, result.output
    runs = {r.label: r for r in ResultStore(tmp_path / "out").all()}
    assert {label: r.status for label, r in runs.items()} == {"zero_shot": RunStatus.ok, "lora": RunStatus.ok}
    lora, zero = runs["lora"], runs["zero_shot"]
    assert lora.metrics["n"] == zero.metrics["n"] == 12
    assert 0 < lora.cost["trainable_params"] < lora.cost["total_params"] / 50
    assert lora.cost["train_time_s"] > 0 and lora.cost["adapter_size_mb"] > 0
    assert len(lora.curves["train_loss"]) == 3
    assert (tmp_path / "out" / lora.artifact_dir / "model" / "adapter_config.json").exists()
    again = CliRunner().invoke(app, ["compare", str(plan)])
    assert "2 finished run(s)" in again.output  # resumable: nothing re-runs
