"""The results store: atomic one-JSON-per-run, round trip, and what counts as done."""
from __future__ import annotations

import json

from base.io import write_json_atomic
from base.results import ResultStore, RunResult, RunStatus


def _result(run_id: str, status: RunStatus) -> RunResult:
    return RunResult(run_id=run_id, task="t", strategy="lora", label="lora", status=status, config={"r": 8},
                     config_hash="abc", metrics={"accuracy": 0.75, "accuracy_ci": [0.6, 0.9]}, cost={"train_time_s": 3.5})


def test_round_trip_and_done(tmp_path):
    store = ResultStore(tmp_path)
    store.save(_result("ok-run", RunStatus.ok))
    store.save(_result("bad-run", RunStatus.failed))
    again = store.get("ok-run")
    assert again.metrics["accuracy_ci"] == [0.6, 0.9] and again.status is RunStatus.ok
    assert store.is_done("ok-run")
    assert not store.is_done("bad-run")  # failed runs are retried
    assert not store.is_done("missing")
    assert sorted(r.run_id for r in store.all()) == ["bad-run", "ok-run"]
    assert json.loads(store.path_for("ok-run").read_text())["status"] == "ok"


def test_atomic_write_keeps_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})

    class Boom:
        def __str__(self):
            raise RuntimeError("cannot serialise")

    try:
        write_json_atomic(path, {"a": Boom()})
    except RuntimeError:
        pass
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_unknown_keys_are_ignored_on_load(tmp_path):
    store = ResultStore(tmp_path)
    store.save(_result("r", RunStatus.ok))
    data = json.loads(store.path_for("r").read_text())
    data["future_field"] = 1
    store.path_for("r").write_text(json.dumps(data))
    assert store.get("r").run_id == "r"
