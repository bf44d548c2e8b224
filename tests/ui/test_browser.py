"""The board in a real headless Chromium (Debian's, driven by Playwright over CDP): fill the advise form, save the
plan, fix it on the Plan page (an error shows beside its field), start a tiny compare on the tiny model, wait for it
and see its results, then the report and the predictions. Screenshots of each page go to the test's tmp folder.

Skips without /usr/bin/chromium (tests/reports/setup_browser.sh installs it) or without the playwright package.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from base.results import load_runs


CHROMIUM = Path("/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api", reason="needs `pip install playwright` (the browser is Debian's)")
pytest.importorskip("gradio", reason="the board needs gradio")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium "
                                "(tests/reports/setup_browser.sh); the board is not tested in a browser")
SCREENSHOTS = os.environ.get("ADAPT_UI_SCREENSHOTS")  # a folder to copy the screenshots to (docs/images)


@pytest.fixture()
def board(start_board, workspace_dir):
    return start_board(workspace_dir)


def choose(page, elem_id: str, value: str) -> None:
    """Pick a value in a Gradio dropdown: type it into the combobox and click the matching option."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).first.click()


def type_into(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(value)


def table_rows(page, elem_id: str) -> int:
    """Rows of a Gradio dataframe (it draws only the visible ones; the grid's aria-rowcount counts all, header too)."""
    return int(page.get_attribute(f"#{elem_id} [role=grid]", "aria-rowcount")) - 1


def shoot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / "screenshots" / f"{name}.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SCREENSHOTS) / shot.name).write_bytes(shot.read_bytes())
    return shot


def test_advise_plan_run_results_in_a_browser(board, workspace_dir, tmp_path):
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(board)

        # Advise: the terminal's questions as a form; a bad answer is shown beside its field
        type_into(page, "q-task_name", "toy")
        choose(page, "q-task_type", "classification")
        choose(page, "q-need", "skill")
        type_into(page, "q-labelled_examples", "8 thousand")
        type_into(page, "q-train", "data/train.jsonl")
        type_into(page, "q-eval", "data/eval.jsonl")
        type_into(page, "q-model", "tiny-model")
        choose(page, "q-gpu", "none")
        page.click("#advise-recommend")
        page.wait_for_selector("#advise-top:has-text('Top pick')")
        assert "expected a number" in page.inner_text("#q-labelled_examples-error")
        type_into(page, "q-labelled_examples", "8")
        page.click("#advise-recommend")
        page.wait_for_function("!document.querySelector('#q-labelled_examples-error').innerText.includes('expected')")
        assert table_rows(page, "advise-ranking") >= 3 and table_rows(page, "advise-fired") >= 1
        assert "few_shot" in page.inner_text("#advise-ranking")
        type_into(page, "advise-plan-path", "plan.yaml")
        page.click("#advise-save")
        page.wait_for_selector("#advise-saved:has-text('Plan saved to')")
        shoot(page, tmp_path, "advise")
        saved = yaml.safe_load((workspace_dir / "plan.yaml").read_text())
        assert saved["tasks"][0]["train"] == str(workspace_dir / "data" / "train.jsonl")
        assert saved["output_dir"] == "results/toy" and (workspace_dir / "plan.advice.json").is_file()

        # Plan: a bad value is refused beside its field, a fixed plan saves and gives its CLI command
        page.click("#tab-plan-button")
        choose(page, "plan-file", "plan.yaml")
        page.click("#plan-load")
        page.wait_for_selector("#plan-status:has-text('Loaded')")
        type_into(page, "plan-tasks-0-eval_limit", "0")
        page.click("#plan-validate")
        page.wait_for_selector("#plan-tasks-0-eval_limit-error:has-text('greater than or equal to 1')")
        type_into(page, "plan-tasks-0-eval_limit", "4")
        type_into(page, "plan-strategies", "- zero_shot\n- {strategy: lora, r: 4, max_steps: 8, batch_size: 2, learning_rate: 0.01}\n")
        page.locator("#plan-forgetting-enabled input").uncheck()
        page.click("#plan-save")
        page.wait_for_selector("#plan-status:has-text('saved to')")
        assert page.locator("#plan-tasks-0-eval_limit-error").inner_text().strip() == ""
        assert "adapt compare plan.yaml" in page.locator("#plan-command textarea").input_value()
        shoot(page, tmp_path, "plan")

        # Run: compare in the background; the page follows it, also after a reload
        page.click("#tab-run-button")
        choose(page, "run-plan", "plan.yaml")
        page.click("#run-start")
        page.wait_for_selector("#run-start-note:has-text('Started job')")
        page.reload()
        page.click("#tab-run-button")
        page.wait_for_selector("#run-state:has-text('finished')", timeout=300_000)
        assert "every run ok" in page.inner_text("#run-state"), page.inner_text("#run-log")
        results = page.inner_text("#run-results")
        assert "zero_shot" in results and "lora" in results and "accuracy" in results
        assert "lora" in page.inner_text("#run-loss")  # the training loss curve's legend
        shoot(page, tmp_path, "run")
        assert len(list((workspace_dir / "results" / "toy" / "runs").glob("*.json"))) == 2  # where the CLI looks

        # Results: the report, and the predictions filtered to errors
        page.click("#tab-results-button")
        page.locator("#results-folder input").fill("../..")  # typed by hand: refused, nothing read
        page.click("#results-show")
        page.wait_for_selector("#results-error:has-text('outside the workspace')")
        choose(page, "results-folder", "results/toy")
        page.click("#results-show")
        frame = page.frame_locator("#report-frame")
        frame.locator("h2:has-text('Task: toy')").wait_for()
        assert frame.locator("table").count() >= 2
        shoot(page, tmp_path, "results")

        # Predictions: every eval item, the dataset's markup shown as text; then only the run's errors
        page.click("#results-tab-predictions-button")
        page.wait_for_selector("#results-predictions:has-text('onerror')")
        assert table_rows(page, "results-predictions") == 4
        assert "<script>document.title='pwned'</script>" in page.inner_text("#results-predictions")
        page.locator("#results-filter input[value='errors']").check()
        shown = next(run for run in load_runs(workspace_dir / "results" / "toy") if run.label == "lora")
        wrong = sum(not row["correct"] for row in map(json.loads, (workspace_dir / "results" / "toy" / shown.predictions_file).read_text().splitlines()))
        page.wait_for_function(f"document.querySelector('#results-predictions [role=grid]').getAttribute('aria-rowcount') == '{wrong + 1}'")
        shoot(page, tmp_path, "predictions")
        assert page.title() == "adaptlab" and page.locator("img[src=x]").count() == 0
        browser.close()
    shots = sorted((tmp_path / "screenshots").glob("*.png"))
    assert [shot.stem for shot in shots] == ["advise", "plan", "predictions", "results", "run"]
    assert all(shot.stat().st_size > 20_000 for shot in shots)
