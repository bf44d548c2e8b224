"""Report details a newcomer tripped over: a busy machine's timings flagged, ruled-out strategies marked, no
"0 s" predicted for what was never sized, no adapter size for prompting runs; the run records load and threads."""
from __future__ import annotations

from base.io import write_json_atomic
from base.results import environment
from reports.build import Table, build_report


def cells(report, title_start):
    section = next(s for s in report.sections if s.title.startswith(title_start))
    table = next(block for block in section.blocks if isinstance(block, Table))
    return {row[0].text: {column: cell.text for column, cell in zip(table.columns, row)} for row in table.rows}


def test_run_environment_records_load_average_and_torch_threads():
    import torch

    env = environment()
    assert len(env["load_average"]) == 3 and all(load >= 0 for load in env["load_average"])
    assert env["torch_threads"] == torch.get_num_threads()


def test_report_cautions_when_load_exceeded_the_cores(results_factory, run_maker):
    quiet, busy = run_maker(strategy="zero_shot", score=0.6), run_maker(strategy="lora", score=0.7)
    quiet.env = {**quiet.env, "cpu_count": 2, "load_average": [1.9, 1.5, 1.2]}
    busy.env = {**busy.env, "cpu_count": 2, "load_average": [9.6, 6.0, 3.0]}
    text = " ".join(getattr(block, "text", "") for block in build_report(results_factory([quiet, busy])).sections[0].blocks)
    assert "Caution: measured on a busy machine" in text
    assert "lora (sst2: load 9.6 on 2 cores)" in text and "zero_shot (" not in text


def test_no_caution_on_a_quiet_machine_or_old_runs_without_load(results_factory, run_maker):
    quiet = run_maker(strategy="zero_shot", score=0.6)
    quiet.env = {**quiet.env, "cpu_count": 2, "load_average": [1.9, 1.5, 1.2]}
    old = run_maker(strategy="lora", score=0.7)  # recorded before load was: no key at all
    report = build_report(results_factory([quiet, old]))
    assert not any("busy machine" in getattr(block, "text", "") for block in report.sections[0].blocks)


def test_prompting_runs_show_no_adapter_size(results_factory, run_maker):
    zero = run_maker(strategy="zero_shot", score=0.6, cost={"trainable_params": 0, "adapter_size_mb": 0.0})
    lora = run_maker(strategy="lora", score=0.7, cost={"trainable_params": 460_800, "adapter_size_mb": 1.8})
    rows = cells(build_report(results_factory([zero, lora])), "Task: sst2")
    assert rows["zero_shot"]["adapter size"] == "—"
    assert rows["lora"]["adapter size"] == "1.8 MB"


def test_advisor_table_marks_ruled_out_strategies_and_does_not_predict_zero_seconds(results_factory, run_maker):
    results = results_factory([run_maker(strategy="zero_shot", score=0.6), run_maker(strategy="lora", score=0.7)])
    write_json_atomic(results / "advice.json", {
        "ranking": [{"strategy": "lora", "score": 2.0}, {"strategy": "zero_shot", "score": 1.0}],
        "ruled_out": {"cpt": ["no_corpus: continued pre-training needs a document corpus"]},
        "estimates": {"lora": {"train_hours": 0.1, "peak_memory_gib": 1.5},
                      "zero_shot": {"train_hours": 0.0, "peak_memory_gib": 1.0},
                      "cpt": {"train_hours": 0.0, "peak_memory_gib": 2.0}},
    })
    rows = cells(build_report(results), "What the advisor")
    assert rows["cpt"]["advisor rank"] == "ruled out"
    assert rows["cpt"]["train time predicted"] == "—"
    assert rows["lora"]["advisor rank"] == "1" and rows["lora"]["train time predicted"] == "6.0 min"
