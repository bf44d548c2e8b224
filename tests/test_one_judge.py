"""One judge of measured results: `adapt advise --results` and `adapt report` recommend the same run, by the
same rules (accuracy interval, cost, forgetting weighed by the stated tolerance)."""
from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from advisor import hardware
from base import paths
from base.judge import Candidate, judge
from base.results import ResultStore, RunResult, RunStatus
from cli.app import app
from reports.build import Callout, build_report


def run(label: str, score: float, ci: tuple[float, float] | None, usd: tuple[float, float] | None,
        retained: float | None = None) -> RunResult:
    metrics = {"accuracy": score, "n": 200, **({"accuracy_ci": list(ci)} if ci else {})}
    cost = {"usd_train": usd[0], "usd_per_1m_queries": usd[1]} if usd else {}
    return RunResult(run_id=f"sst2__{label}__0", task="sst2", strategy=label, label=label, status=RunStatus.ok,
                     config={}, config_hash="0", metrics=metrics, cost=cost,
                     forgetting={"retained": retained} if retained is not None else {})


SCENARIOS = {  # name: (tolerance, runs, the run both surfaces must recommend)
    "cheaper_within_the_interval": (None, [run("few_shot", .78, (.72, .84), (0, 20)), run("lora", .82, (.77, .87), (3, 5)),
                                           run("full_ft", .84, (.79, .89), (12, 5), retained=.9)], "lora"),
    "best_outside_any_interval": (None, [run("zero_shot", .60, (.55, .65), (0, 5)), run("lora", .82, (.80, .84), (3, 5))], "lora"),
    "forgetting_weighs_when_tolerance_is_low": ("low", [run("lora", .76, None, (3, 5), retained=.99),
                                                        run("full_ft", .80, None, (3, 5), retained=.70)], "lora"),
    "forgetting_ignored_when_tolerance_is_high": ("high", [run("lora", .76, None, (3, 5), retained=.99),
                                                           run("full_ft", .80, None, (3, 5), retained=.70)], "full_ft"),
    "no_costs_fall_back_to_the_cheapest_first_order": (None, [run("full_ft", .80, (.70, .90), None),
                                                              run("few_shot", .75, (.65, .85), None)], "few_shot"),
}


@pytest.fixture(autouse=True)
def fixed_cpu():
    cache = paths.home() / hardware.CACHE_FILE
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"cpu_gflops": 50.0}))


@pytest.mark.parametrize("name", SCENARIOS)
def test_advise_and_report_recommend_the_same_run(name, tmp_path):
    tolerance, runs, expected = SCENARIOS[name]
    store = ResultStore(tmp_path / "results")
    for result in runs:
        store.save(result)
    plan = tmp_path / "plan.yaml"
    sets = ["-s", "labelled_examples=600"] + (["-s", f"forgetting_tolerance={tolerance}"] if tolerance else [])
    advised = CliRunner().invoke(app, ["advise", *sets, "--results", str(store.root), "--plan", str(plan), "--json"])
    assert advised.exit_code == 0, advised.output
    advice = json.loads(advised.stdout)
    shutil.copy(plan.with_suffix(".advice.json"), store.root / "advice.json")  # what `adapt compare` does with it
    headline = next(block for block in build_report(store.root).sections[0].blocks if isinstance(block, Callout))
    reported = re.match(r"For sst2, use (\S+):", headline.sentences[0]).group(1)
    assert advice["measured"][0]["label"] == reported == expected
    assert advice["top"] == expected


def test_unstated_tolerance_does_not_weigh_forgetting_but_a_stated_one_does():
    found = [Candidate("lora", "lora", "accuracy", .76, cost_usd=1, retained=.99),
             Candidate("full_ft", "full_ft", "accuracy", .80, cost_usd=1, retained=.70)]
    assert judge(found).pick.label == "full_ft"
    assert judge(found, "medium").pick.label == "lora"  # .80 - .5 x .30 = .65 < .76 - .5 x .01
    assert judge([]) is None


def test_a_tie_on_score_is_not_called_forgetting(tmp_path):
    """Equal scores: the cheaper run is the best one, and the headline says so without talk of forgetting."""
    from reports.table import recommend, results_frame

    runs = [run("zero_shot", .53, (.33, .70), (0, 8.58)), run("lora", .53, (.33, .70), (0, 8.24))]
    pick = recommend(results_frame(runs), "sst2")
    assert pick.label == "lora" and "runner-up, zero_shot, scores 0.530" in pick.sentences[1]
