"""The report document and the files `adapt report` writes: table cells, failures, examples, optional
sections, escaping of dataset text, and no torch on the way."""
from __future__ import annotations

import base64
import re
import subprocess
import sys

import pytest

from base.errors import AdaptError
from reports.build import Plot, Table, build_report, report_command
from reports.html import render_html
from reports.markdown import escape_markdown, render_markdown

SCRIPT = "<script>document.title='pwned'</script>"


def tables(report, section_title):
    section = next(section for section in report.sections if section.title == section_title)
    return [block for block in section.blocks if isinstance(block, Table)]


def cells_by_label(table):
    return {row[0].text: {column: cell for column, cell in zip(table.columns, row)} for row in table.rows}


def test_results_table_shows_intervals_units_and_best_marks(sst2_report):
    report = sst2_report
    results, examples = tables(report, "Task: sst2")
    rows = cells_by_label(results)
    assert list(rows) == ["zero_shot", "few_shot", "lora", "full_ft"]  # the failed run is not in the table
    assert rows["lora"]["accuracy (95% CI)"].text == "0.820 (0.770–0.870)"
    assert rows["full_ft"]["accuracy (95% CI)"].best and not rows["lora"]["accuracy (95% CI)"].best
    assert rows["lora"]["trainable params"].text == "460.8K (0.34%)"
    assert rows["lora"]["train time"].text == "10.0 min"
    assert rows["full_ft"]["peak memory"].text == "2.54 GB"
    assert rows["full_ft"]["forgetting Δ (retained)"].text == "-0.060 (90% kept) ⚠"
    assert rows["lora"]["forgetting Δ (retained)"].best
    assert rows["zero_shot"]["forgetting Δ (retained)"].text == "—"
    assert rows["few_shot"]["latency p50 / p95"].text == "300 ms / 450 ms"
    assert [label for label, row in rows.items() if row["$ / 1M queries"].best] == ["zero_shot", "lora", "full_ft"]


def test_failed_runs_are_listed_with_the_line_that_says_what_went_wrong(sst2_report):
    (failed,) = tables(sst2_report, "Failed runs")
    assert [[cell.text for cell in row] for row in failed.rows] == [
        ["sst2", "qlora", "sst2__qlora__abc123", "RuntimeError: out of memory | retry"]]


def test_examples_show_disagreements_side_by_side(sst2_report):
    _, examples = tables(sst2_report, "Task: sst2")
    assert examples.columns == ["id", "input", "target", "zero_shot", "few_shot", "lora", "full_ft"]
    by_id = {row[0].text: [cell.text for cell in row] for row in examples.rows}
    assert list(by_id) == ["2", "3"]  # ids 1 and 4: every strategy agrees
    assert by_id["3"] == ["3", "a wonderful cast", "positive", "✗ negative", "✗ negative", "✓ positive", "✓ positive"]
    assert by_id["2"][1] == f"awful | boring film {SCRIPT}"  # the bare prompt (no few-shot demos), one line


def test_headline_comes_first(sst2_report):
    report = sst2_report
    assert report.sections[0].title == "Recommendation"
    assert report.sections[0].blocks[0].sentences[0].startswith("For sst2, use lora:")


def test_report_files_written_and_self_contained(sst2_results, tmp_path, capsys):
    out = tmp_path / "out"
    markdown_path, html_path = report_command(sst2_results, out=out, title="Sentiment study")
    assert capsys.readouterr().out.split() == [str(markdown_path), str(html_path)]
    html = html_path.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4 and all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert not re.search(r"(src|href)=\"(?!data:)", html)  # nothing to fetch: opens offline
    assert "@media print" in html and "<script" not in html
    markdown = markdown_path.read_text(encoding="utf-8")
    linked = re.findall(r"\]\((report_plots/[^)]+\.png)\)", markdown)
    assert len(linked) == 4 and all((out / path).read_bytes().startswith(b"\x89PNG") for path in linked)
    assert markdown.startswith("# Sentiment study\n")


def test_dataset_text_is_escaped_in_both_formats(sst2_report):
    report = sst2_report
    html = render_html(report)
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    assert SCRIPT not in html
    markdown = render_markdown(report)
    assert SCRIPT not in markdown and "&lt;script&gt;" in markdown
    example_line = next(line for line in markdown.splitlines() if line.startswith("| 2 |"))
    unescaped_pipes = len(re.findall(r"(?<!\\)\|", example_line))
    assert unescaped_pipes == 8  # 7 columns -> 8 separators: the dataset's pipe did not add a column


def test_escape_markdown_keeps_words_readable():
    assert escape_markdown("zero_shot | a\nb") == "zero_shot \\| a b"
    assert escape_markdown("_init_ *bold* [link](x) <b>") == "\\_init\\_ \\*bold\\* \\[link\\](x) &lt;b&gt;"


def test_missing_optional_sections_degrade_to_dashes(results_factory, run_maker):
    bare = run_maker(strategy="zero_shot", score=0.5, ci=None)
    bare.env, bare.hashes = {}, {}
    results = results_factory([bare, run_maker(strategy="lora", score=0.7, ci=None)])
    report = build_report(results)
    titles = [section.title for section in report.sections]
    assert titles == ["Recommendation", "Task: sst2", "Reproducibility"]  # no failures, no advice
    assert not report.plots()  # no cost, forgetting, latency or curves: nothing to draw
    rows = cells_by_label(tables(report, "Task: sst2")[0])
    assert rows["lora"]["accuracy (95% CI)"].text == "0.700"
    assert {rows["lora"][column].text for column in ("train time", "peak memory", "$ / 1M queries")} == {"—"}
    assert "Forgetting was not measured for lora" in report.sections[0].blocks[0].sentences[2]
    render_html(report), render_markdown(report)  # both render without the optional data


def test_advisor_section_compares_prediction_with_measurement(sst2_report):
    report = sst2_report
    section = next(section for section in report.sections if section.title.startswith("What the advisor"))
    assert section.blocks[0].text == ("Before the runs the advisor ranked lora first. "
                                      "The measurements disagree: full_ft scored best.")
    rows = cells_by_label(next(block for block in section.blocks if isinstance(block, Table)))
    lora = {column: cell.text for column, cell in rows["lora"].items()}
    assert (lora["advisor rank"], lora["measured rank"]) == ("1", "2")
    # 1.6 GiB predicted vs 1500 MiB measured: +9%; 0.2 h vs 600 s: +20%
    assert (lora["memory predicted"], lora["memory measured"]) == ("1.6 GB", "1.46 GB (prediction +9%)")
    assert (lora["train time predicted"], lora["train time measured"]) == ("12.0 min", "10.0 min (prediction +20%)")
    assert rows["zero_shot"]["advisor rank"].text == "—"
    footer = render_markdown(report).split("## Reproducibility")[1]
    assert section.blocks[1].text.startswith("Predicted time, memory and $ are for L4")
    assert "command: adapt compare plan.yaml" in footer and "plan: /work/plan.yaml" in footer
    assert "torch 2.13.0" in footer and "model=sha256:m0d31" in footer and "tasks" not in footer


def test_empty_results_directory_is_a_user_error(tmp_path):
    with pytest.raises(AdaptError, match="no runs found"):
        report_command(tmp_path, out=None, title=None)


def test_corrupt_predictions_line_is_named(sst2_results):
    path = sst2_results / "artifacts" / "sst2__lora__abc123" / "predictions.jsonl"
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(AdaptError) as error:
        build_report(sst2_results)
    assert error.value.file == str(path) and error.value.line == 5


def test_plots_are_pngs_in_the_document(sst2_report):
    plots = sst2_report.plots()
    assert [plot.name for plot in plots] == ["sst2-accuracy-vs-cost", "sst2-forgetting", "sst2-latency-memory", "sst2-loss"]
    assert all(isinstance(plot, Plot) and len(plot.png) > 10_000 for plot in plots)


def test_report_command_does_not_import_torch(sst2_results):
    """`adapt report` in a fresh interpreter: the report is written and torch never loaded."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.app import app\n"
        f"result = CliRunner().invoke(app, ['report', {str(sst2_results)!r}])\n"
        "print(result.exit_code, 'torch' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-3:] == ["0", "False", "True"], done.stdout + done.stderr
    assert (sst2_results / "report.html").exists()


def test_cli_reports_empty_directory_without_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cli.app", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no runs found" in done.stderr and "Traceback" not in done.stderr



def test_several_tasks_get_one_headline_each_and_their_own_section(results_factory, run_maker):
    runs = [run_maker(task="sst2", strategy="few_shot", score=0.7, ci=(0.6, 0.8)),
            run_maker(task="sst2", strategy="lora", score=0.9, ci=(0.85, 0.95)),
            run_maker(task="sciq", strategy="rag", score=0.8, ci=(0.7, 0.9)),
            run_maker(task="sciq", strategy="lora", score=0.6, ci=(0.5, 0.7))]
    report = build_report(results_factory(runs))
    headlines = [block.sentences[0] for block in report.sections[0].blocks]
    assert [line.split(":")[0] for line in headlines] == ["For sciq, use rag", "For sst2, use lora"]
    assert [section.title for section in report.sections[1:3]] == ["Task: sciq", "Task: sst2"]


def test_a_task_whose_runs_all_failed_still_reports(results_factory, run_maker):
    runs = [run_maker(task="sst2", status="failed", score=None, error=None),
            run_maker(task="x", strategy="custom_kind", score=0.5, ci=None, cost={"usd_train": 1.0})]
    report = build_report(results_factory(runs))
    failed_task = next(section for section in report.sections if section.title == "Task: sst2")
    assert [block.text for block in failed_task.blocks] == ["Every run of this task failed: see Failed runs."]
    (failed,) = tables(report, "Failed runs")
    assert failed.rows[0][3].text == "no error recorded"
    headline = {block.sentences[0].split(",")[0]: block.sentences for block in report.sections[0].blocks}
    assert headline["No run of sst2 produced a score"][1] == "1 of 1 runs failed; their errors are listed under Failed runs."
    assert headline["For x"][2].startswith("Forgetting was not measured for custom_kind")  # unknown kind: no claim


def test_report_says_when_runs_of_a_task_were_scored_differently(tmp_path):
    """A schema-1 result (generation-scored classification, no `scoring` recorded) beside a ranked one."""
    from reports.build import Paragraph
    from tests.reports.conftest import make_run, write_results

    old = make_run(strategy="zero_shot", score=0.44)
    old.schema_version = 1
    new = make_run(strategy="lora", score=0.8)
    new.metrics.update(scoring="rank", format_compliance=0.9)
    results = write_results(tmp_path, [old, new], predictions=False)
    section = next(s for s in build_report(results).sections if s.title == "Task: sst2")
    notes = [b.text for b in section.blocks if isinstance(b, Paragraph) and b.text.startswith("Caution")]
    assert notes and "generate: zero_shot" in notes[0] and "rank: lora" in notes[0]
    table = next(b for b in section.blocks if isinstance(b, Table))
    assert "format compliance" in table.columns and "90%" in [c.text for row in table.rows for c in row]


def test_old_run_json_loads_as_schema_1_generation_scored(tmp_path):
    import json

    from base.results import RunResult

    data = {"run_id": "t__zero_shot__x", "task": "t", "strategy": "zero_shot", "label": "zero_shot", "status": "ok",
            "config": {"task": {"type": "classification"}}, "config_hash": "x", "metrics": {"accuracy": 0.44}}
    run = RunResult.from_json(json.loads(json.dumps(data)))
    assert run.schema_version == 1 and run.scoring == "generate"
