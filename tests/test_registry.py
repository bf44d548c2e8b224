"""Adding a strategy is one registry entry and one runner module: a dummy strategy, registered here and nowhere
else, is validated in plans, ranked and estimated by `adapt advise`, run by compare and drawn in the report."""
from __future__ import annotations

import io
import json
from typing import Literal

import numpy as np
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from advisor import estimate as est
from advisor import hardware
from base import paths, registry
from base.errors import AdaptError
from base.plan import LoraSettings, parse_plan, run_specs
from cli.app import app
from reports import plots
from reports.build import Plot, build_report
from runners.compare import compare

COLOUR = "#123456"

RUNNER = '''
from base.results import RunResult, RunStatus


def run(spec):
    return RunResult(run_id=spec.run_id, task=spec.task.name, strategy=spec.strategy.strategy, label=spec.strategy.name,
                     status=RunStatus.ok, config=spec.model_dump(mode="json"), config_hash=spec.config_hash,
                     metrics={"accuracy": 0.7, "accuracy_ci": [0.6, 0.8], "n": 4}, seed=spec.seed, model=spec.model,
                     duration_s=0.1,
                     cost={"usd_train": 1.0, "usd_per_1m_queries": 2.0, "train_time_s": 1.0, "peak_memory_mb": 10.0})
'''


class EchoSettings(LoraSettings):
    strategy: Literal["echo"] = "echo"  # type: ignore[assignment]


@pytest.fixture()
def echo(tmp_path, monkeypatch):
    """The one entry (and its runner module, on the path); removed again after the test."""
    (tmp_path / "echo_runner.py").write_text(RUNNER)
    monkeypatch.syspath_prepend(str(tmp_path))
    cache = paths.home() / hardware.CACHE_FILE  # a fixed CPU figure: no matmul benchmark in a unit test
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"cpu_gflops": 50.0}))
    registry.register(registry.Strategy("echo", EchoSettings, "echo_runner:run", "a dummy adapter for tests",
                                        needs=("train",), changes_weights=True, estimate="lora", prior=9, colour=COLOUR))
    yield registry.get("echo")
    registry.unregister("echo")


def plan_text(tmp_path, train: bool = True) -> str:
    (tmp_path / "eval.jsonl").write_text('{"text": "a", "label": "x"}\n')
    (tmp_path / "train.jsonl").write_text('{"text": "b", "label": "y"}\n')
    return (f"output_dir: {tmp_path / 'out'}\nforgetting: {{enabled: false}}\n"
            f"tasks: [{{name: toy, type: classification, eval: eval.jsonl{', train: train.jsonl' if train else ''}}}]\n"
            "strategies: [{strategy: echo, r: 2}]\n")


def test_plan_validation_knows_the_registered_strategy(echo, tmp_path):
    plan = parse_plan(plan_text(tmp_path), base_dir=tmp_path)
    assert isinstance(plan.strategies[0], EchoSettings) and plan.strategies[0].r == 2
    with pytest.raises(AdaptError, match="echo needs a train file"):
        parse_plan(plan_text(tmp_path, train=False), base_dir=tmp_path).check_runnable()
    registry.unregister("echo")
    with pytest.raises(AdaptError, match="does not match any of the expected tags"):
        parse_plan(plan_text(tmp_path), base_dir=tmp_path)


def test_advise_ranks_estimates_and_plans_the_registered_strategy(echo, tmp_path):
    plan = tmp_path / "plan.yaml"
    result = CliRunner().invoke(app, ["advise", "-s", "labelled_examples=500", "--plan", str(plan), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["top"] == "echo"  # its prior of 9 outranks every built-in
    assert data["estimates"]["echo"]["trainable_params"] == data["estimates"]["lora"]["trainable_params"] > 0
    written = yaml.safe_load(plan.read_text())
    assert "echo" in [s["strategy"] for s in written["strategies"]] and written["tasks"][0]["train"]
    shape = est.model_shape("smollm2-135m-instruct")
    assert est.trainable_params(shape, est.TrainSetup(strategy="echo")) == est.trainable_params(shape, est.TrainSetup())
    ruled = CliRunner().invoke(app, ["advise", "-s", "labelled_examples=0", "--plan", str(plan), "--json"])
    assert "echo" in json.loads(ruled.stdout)["ruled_out"]  # no labels: like every supervised strategy


def test_compare_runs_it_and_the_report_draws_it_in_its_colour(echo, tmp_path):
    plan = parse_plan(plan_text(tmp_path), base_dir=tmp_path)
    results = compare(plan, run_specs(plan, device="cpu"), console=Console(file=io.StringIO()))
    assert [r.status.value for r in results] == ["ok"]
    assert plots.strategy_colours([("echo", "echo")]) == {"echo": COLOUR}
    report = build_report(tmp_path / "out")
    figure = next(block for block in report.plots() if block.name.endswith("accuracy-vs-cost"))
    assert isinstance(figure, Plot)
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(figure.png), format="png")[..., :3]
    target = np.array([int(COLOUR[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    assert (np.abs(pixels - target).max(axis=-1) < 0.02).sum() > 20  # the marker is drawn in the entry's colour
