"""The Results page: predictions filtered to a run's errors, or to what it got wrong and another run got right."""
from __future__ import annotations

from base.io import write_jsonl_atomic
from base.results import ResultStore, RunResult, RunStatus
from ui.results_view import FILTERS, find_run, loss_points, prediction_rows, run_details, run_labels, summary_rows

TARGETS = ["positive", "negative", "positive", "negative"]
SAID = {"zero_shot": ["positive", "positive", "negative", "negative"], "lora": ["positive", "negative", "positive", "positive"]}


def results(tmp_path):
    store = ResultStore(tmp_path)
    for label, predictions in SAID.items():
        relative = f"artifacts/{label}/predictions.jsonl"
        write_jsonl_atomic(tmp_path / relative, [
            {"id": str(i), "input": f"text <b>{i}</b>", "prediction": p, "target": t, "correct": p == t}
            for i, (p, t) in enumerate(zip(predictions, TARGETS))])
        store.save(RunResult(run_id=f"toy__{label}__0", task="toy", strategy=label, label=label, status=RunStatus.ok,
                             config={}, config_hash="0", metrics={"accuracy": sum(p == t for p, t in zip(predictions, TARGETS)) / 4},
                             curves={"train_loss": [[1, 2.0], [2, 1.5]]} if label == "lora" else {},
                             predictions_file=relative))
    return tmp_path


def test_predictions_filtered_to_errors_and_to_what_another_run_fixed(tmp_path):
    folder = results(tmp_path)
    zero, lora = find_run(folder, "toy · zero_shot"), find_run(folder, "toy · lora")
    assert [row[0] for row in prediction_rows(folder, zero)] == ["0", "1", "2", "3"]
    assert [row[0] for row in prediction_rows(folder, zero, "errors")] == ["1", "2"]
    assert [row[0] for row in prediction_rows(folder, zero, FILTERS[2], lora)] == ["1", "2"]
    assert [row[0] for row in prediction_rows(folder, lora, FILTERS[2], zero)] == ["3"]
    assert prediction_rows(folder, zero, "errors")[0] == ["1", "text <b>1</b>", "negative", "positive", False]


def test_run_list_details_summary_and_loss(tmp_path):
    folder = results(tmp_path)
    assert run_labels(folder) == ["toy · lora", "toy · zero_shot"]
    details = run_details(find_run(folder, "toy · lora"))
    assert details["metrics"] == {"accuracy": 0.75} and "curves" not in details
    assert summary_rows(folder)[1][:5] == ["toy", "zero_shot", "ok", "accuracy", "0.500"]
    assert loss_points(folder, {"lora"}) == [{"run": "lora", "step": 1, "loss": 2.0}, {"run": "lora", "step": 2, "loss": 1.5}]
    assert loss_points(folder, {"zero_shot"}) == []
