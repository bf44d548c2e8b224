"""The web board (`adapt ui`): four pages — Advise, Plan, Run, Results — over the functions the CLI calls.

Gradio, because it is the ML ecosystem's convention for such boards (LLaMA-Factory's is one) and it ships its
frontend inside the wheel, so the board works offline. This is the only module that imports it.
Every handler checks paths with the workspace (ui.workspace) before it touches a file: the browser is a caller
like any other. Text from datasets reaches the page only as component values (rendered as text) or inside the
report's sandboxed frame, whose HTML escapes it.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from advisor.advise_cmd import ESTIMATE_COLUMNS, estimate_rows
from advisor.engine import recommend
from base.errors import AdaptError
from base.io import write_text_atomic
from ui import advice, jobs, plan_form, questionnaire, results_view
from ui.workspace import Workspace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import gradio as gr  # noqa: E402

LOG_TAIL_LINES = 200
CSS = """.error-note p { color: #b42318; margin: 0; } .mono textarea { font-family: ui-monospace, monospace; }
.field-grid { display: grid !important; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 8px 16px; }"""


def error_note(messages: str | list[str] | None) -> str:
    """A field's error as Markdown: escaped, so a message quoting the user's input cannot become markup."""
    if not messages:
        return ""
    items = [messages] if isinstance(messages, str) else messages
    return "\n\n".join("⚠ " + html.escape(item).replace("*", "\\*").replace("_", "\\_") for item in items)


def report_frame(page: str) -> str:
    """The report in a frame with no scripts and no access to the board (sandbox without allow-scripts)."""
    return (f'<iframe id="report-frame" sandbox="" style="width:100%;height:900px;border:1px solid #d1d9e0" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')


def _error_box(elem_id: str) -> gr.Markdown:
    return gr.Markdown("", elem_id=elem_id, elem_classes=["error-note"])


# --- Advise -------------------------------------------------------------------------------------------------


def advise_page(workspace: Workspace) -> None:
    fields = questionnaire.form_fields()
    inputs: list[gr.components.Component] = []
    notes: list[gr.Markdown] = []
    for section in dict.fromkeys(field.section for field in fields):
        gr.Markdown(f"### {section}")
        with gr.Row(elem_classes=["field-grid"]):
            for field in (f for f in fields if f.section == section):
                with gr.Column(min_width=360):
                    if field.widget == "dropdown":
                        inputs.append(gr.Dropdown(list(field.choices), value=field.default, label=field.label,
                                                  info=field.info, elem_id=f"q-{field.key}"))
                    else:
                        inputs.append(gr.Textbox(value=field.default, label=field.label, info=field.info,
                                                 elem_id=f"q-{field.key}"))
                    notes.append(_error_box(f"q-{field.key}-error"))
    recommend_button = gr.Button("Recommend", variant="primary", elem_id="advise-recommend")
    top = gr.Markdown(elem_id="advise-top")
    ranking = gr.Dataframe(headers=list(ESTIMATE_COLUMNS), label="Ranking and estimates", interactive=False,
                           elem_id="advise-ranking")
    fired = gr.Dataframe(headers=list(advice.FIRED_COLUMNS), label="Rules that fired, in order", interactive=False,
                         wrap=True, column_widths=["15%", "60%", "25%"], elem_id="advise-fired")
    warnings = gr.Markdown(elem_id="advise-warnings")
    plan_preview = gr.Code(language="yaml", label="The plan", interactive=False)
    with gr.Row():
        plan_path = gr.Textbox("plan.yaml", label="Save plan as (in the workspace)", elem_id="advise-plan-path")
        save_button = gr.Button("Save plan", elem_id="advise-save")
    saved = gr.Markdown(elem_id="advise-saved")
    recommendation = gr.State(None)

    def run(*values: str) -> list[Any]:
        answers, errors = questionnaire.answers_from_form(dict(zip((f.key for f in fields), values)), workspace)
        try:
            rec = recommend(answers)
        except AdaptError as error:  # e.g. a model whose size no table knows
            errors[error.field or "model"] = error.message + (f" ({error.hint})" if error.hint else "")
            return [*[error_note(errors.get(field.key)) for field in fields], "", [], [], "", "", None]
        notes_out = [error_note(errors.get(field.key)) for field in fields]
        warning_text = "\n".join(f"- {html.escape(line)}" for line in advice.notes(rec))
        if errors:
            warning_text = f"**{len(errors)} answer(s) not understood** (left unknown; see beside them)\n\n" + warning_text
        return [*notes_out, html.escape(advice.summary(rec)), estimate_rows(rec), advice.fired_rows(rec) or [["—", "none fired", ""]],
                warning_text, rec.plan_yaml, rec]

    def save(rec: Any, raw_path: str) -> str:
        if rec is None:
            return "Press **Recommend** first."
        try:
            plan_file = advice.save_plan(rec, raw_path, workspace)
        except AdaptError as error:
            return error_note(str(error))
        return f"Plan saved to `{workspace.relative(plan_file)}` — open it on the Plan page, or run `adapt compare {workspace.relative(plan_file)}`."

    recommend_button.click(run, inputs, [*notes, top, ranking, fired, warnings, plan_preview, recommendation])
    save_button.click(save, [recommendation, plan_path], saved)


# --- Plan ---------------------------------------------------------------------------------------------------


def plan_page(workspace: Workspace) -> gr.Dropdown:
    with gr.Row():
        plan_file = gr.Dropdown(workspace.plan_files(), label="Plan file (in the workspace)", allow_custom_value=True,
                                elem_id="plan-file")
        load_button = gr.Button("Load", elem_id="plan-load")
    loaded = gr.State({})
    widgets: dict[str, tuple[gr.components.Component, gr.Markdown]] = {}

    def field_widget(field: plan_form.PlanField) -> None:
        elem = "plan-" + field.path.replace(".", "-")
        if field.kind == "choice":
            widget = gr.Dropdown(list(field.choices), label=field.label, elem_id=elem)
        elif field.kind == "bool":
            widget = gr.Checkbox(label=field.label, elem_id=elem)
        elif field.kind == "yaml":
            widget = gr.Textbox(label=field.label, lines=8, elem_id=elem, elem_classes=["mono"],
                                info="e.g. `- zero_shot` or `- {strategy: lora, r: 16, max_steps: 100}`")
        else:
            widget = gr.Textbox(label=field.label, elem_id=elem)
        widgets[field.path] = (widget, _error_box(elem + "-error"))

    with gr.Row(elem_classes=["field-grid"]):  # short fields side by side; the strategies' YAML and the checkbox below
        for field in plan_form.PLAN_FIELDS:
            if field.kind not in ("yaml", "bool"):
                with gr.Column(min_width=300):
                    field_widget(field)
    for field in plan_form.PLAN_FIELDS:
        if field.kind in ("yaml", "bool"):
            field_widget(field)
    inputs = [widgets[field.path][0] for field in plan_form.PLAN_FIELDS]
    notes = [widgets[field.path][1] for field in plan_form.PLAN_FIELDS]
    other = _error_box("plan-other-error")
    with gr.Row():
        validate_button = gr.Button("Validate", elem_id="plan-validate")
        save_button = gr.Button("Save", variant="primary", elem_id="plan-save")
    status = gr.Markdown(elem_id="plan-status")
    command = gr.Textbox(label="Copy as CLI command", buttons=["copy"], interactive=False, elem_id="plan-command")

    def load(raw: str) -> list[Any]:
        try:
            path = workspace.plan_file(raw or "")
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (AdaptError, OSError, yaml.YAMLError) as error:
            return [{}, *[gr.update() for _ in inputs], error_note(str(error)), "", ""]
        if not isinstance(data, dict):
            return [{}, *[gr.update() for _ in inputs], error_note("not a plan: a YAML mapping is expected"), "", ""]
        values = plan_form.form_values(data)
        return [data, *[values[field.path] for field in plan_form.PLAN_FIELDS], "", f"Loaded `{workspace.relative(path)}`.",
                plan_form.cli_command(path, workspace)]

    def check(base: dict, raw: str, *values: Any, write: bool = False) -> list[Any]:
        try:
            path = workspace.plan_file(raw or "")
        except AdaptError as error:
            return [*["" for _ in notes], error_note(str(error)), "", ""]
        plan, problems = plan_form.plan_from_form(base, dict(zip((f.path for f in plan_form.PLAN_FIELDS), values)))
        found = {key: [message] for key, message in problems.items()}
        if not found:
            _, found = plan_form.validate(plan, path, workspace)
        notes_out = [error_note(found.get(field.path)) for field in plan_form.PLAN_FIELDS]
        if found:
            return [*notes_out, error_note(found.get(plan_form.OTHER)), f"**{sum(map(len, found.values()))} problem(s)** — see beside the fields.", ""]
        if write:
            write_text_atomic(path, yaml.safe_dump(plan, sort_keys=False))
        return [*notes_out, "", f"Plan {'saved to' if write else 'is valid:'} `{workspace.relative(path)}`.",
                plan_form.cli_command(path, workspace)]

    load_button.click(load, plan_file, [loaded, *inputs, other, status, command])
    validate_button.click(check, [loaded, plan_file, *inputs], [*notes, other, status, command])
    save_button.click(lambda *args: check(*args, write=True), [loaded, plan_file, *inputs], [*notes, other, status, command])
    return plan_file


# --- Run ----------------------------------------------------------------------------------------------------


def run_page(workspace: Workspace) -> tuple[Any, gr.Dropdown, gr.Dropdown]:
    with gr.Row():
        plan_file = gr.Dropdown(workspace.plan_files(), label="Plan file", allow_custom_value=True, elem_id="run-plan")
        output = gr.Textbox(label="Results folder (blank: the plan's)", elem_id="run-output")
        start_button = gr.Button("Start compare", variant="primary", elem_id="run-start")
    start_note = gr.Markdown(elem_id="run-start-note")
    with gr.Row():
        job_choice = gr.Dropdown([], label="Job", elem_id="run-job")
        cancel_button = gr.Button("Cancel", variant="stop", elem_id="run-cancel")
    state = gr.Markdown(elem_id="run-state")
    runs = gr.Dataframe(headers=["run", "task", "strategy", "state"], label="Runs", interactive=False, elem_id="run-runs")
    results = gr.Dataframe(headers=list(results_view.SUMMARY_COLUMNS), label="Results", interactive=False,
                           elem_id="run-results")
    loss = gr.LinePlot(x="step", y="loss", color="run", label="Training loss", elem_id="run-loss")
    log = gr.Textbox(label="Log (last lines)", lines=14, max_lines=14, autoscroll=True, interactive=False,
                     elem_id="run-log", elem_classes=["mono"])
    timer = gr.Timer(1.0)

    def job_ids() -> list[str]:
        return [job.id for job in jobs.all_jobs(workspace)]

    def start(raw_plan: str, raw_output: str) -> tuple[str, Any]:
        try:
            path = workspace.plan_file(raw_plan or "")
            data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
            if not isinstance(data, dict):
                raise AdaptError("not a plan file", file=workspace.relative(path))
            plan, problems = plan_form.validate(data, path, workspace)
            if problems:
                raise AdaptError("; ".join(f"{key}: {m}" for key, ms in problems.items() for m in ms), file=workspace.relative(path))
            out = workspace.resolve(raw_output, field="results folder") if (raw_output or "").strip() else Path(plan.output_dir)
            workspace.resolve(out, field="results folder")
        except (AdaptError, OSError, yaml.YAMLError) as error:
            return error_note(str(error)), gr.update()
        job = jobs.start(workspace, path, out)
        return f"Started job `{job.id}`: `{job.record['command']}`", gr.update(choices=job_ids(), value=job.id)

    def show(job_id: str | None) -> list[Any]:
        job = jobs.find(workspace, job_id) if job_id else None
        if job is None:
            return ["No job selected.", [], [], None, ""]
        text = job.log()
        output_dir = workspace.root / job.record["output_dir"]
        progress = jobs.runs_progress(text)
        finished = {r["strategy"] for r in progress if r["state"].startswith("ok")}
        # finished runs: every step from their JSON; the running one: what its heartbeats said so far
        points = results_view.loss_points(output_dir, finished) + [p for p in jobs.loss_points(text) if p["run"] not in finished]
        return [f"**{job.state}** · `{job.record['command']}` · started {job.record['started_at']}",
                [[r["run"], r["task"], r["strategy"], r["state"]] for r in progress],
                results_view.summary_rows(output_dir),
                pd.DataFrame(points or [], columns=["run", "step", "loss"]),
                "\n".join(text.splitlines()[-LOG_TAIL_LINES:])]

    def cancel(job_id: str | None) -> str:
        job = jobs.find(workspace, job_id) if job_id else None
        if job is None or not job.running:
            return "Nothing to cancel."
        jobs.cancel(job)
        return f"Cancelling `{job.id}`: the running run stops, finished ones are kept."

    def newest() -> Any:
        ids = job_ids()
        return gr.update(choices=ids, value=ids[0] if ids else None)

    start_button.click(start, [plan_file, output], [start_note, job_choice])
    cancel_button.click(cancel, job_choice, start_note)
    outputs = [state, runs, results, loss, log]
    job_choice.change(show, job_choice, outputs)
    timer.tick(show, job_choice, outputs)
    return newest, job_choice, plan_file


# --- Results ------------------------------------------------------------------------------------------------


def results_page(workspace: Workspace) -> gr.Dropdown:
    with gr.Row():
        folder = gr.Dropdown(workspace.results_folders(), label="Results folder", allow_custom_value=True,
                             elem_id="results-folder")
        show_button = gr.Button("Show", variant="primary", elem_id="results-show")
    note = _error_box("results-error")
    with gr.Tab("Report"):
        report = gr.HTML(elem_id="results-report")
    with gr.Tab("Runs"):
        run_choice = gr.Dropdown([], label="Run", elem_id="results-run")
        details = gr.JSON(label="Run details", elem_id="results-details")
    with gr.Tab("Predictions", elem_id="results-tab-predictions"):
        with gr.Row():
            predictions_run = gr.Dropdown([], label="Predictions of", elem_id="results-pred-run")
            show_only = gr.Radio(list(results_view.FILTERS), value="all", label="Show", elem_id="results-filter")
            other_run = gr.Dropdown([], label="…that this run got right", elem_id="results-other-run")
        predictions = gr.Dataframe(headers=list(results_view.PREDICTION_COLUMNS), interactive=False, wrap=True,
                                   datatype="str", elem_id="results-predictions")

    def folder_path(raw: str) -> Path:
        path = workspace.resolve(raw or "", field="results folder")
        if not (path / "runs").is_dir():
            raise AdaptError("no runs/ here: not a results folder of `adapt compare`", file=workspace.relative(path))
        return path

    def show(raw: str) -> list[Any]:
        try:
            path = folder_path(raw)
            page = report_frame(results_view.report_page(path))
        except AdaptError as error:
            return [error_note(str(error)), "", gr.update(choices=[]), gr.update(choices=[]), gr.update(choices=[])]
        labels = results_view.run_labels(path)
        first = labels[0] if labels else None
        return ["", page, gr.update(choices=labels, value=first), gr.update(choices=labels, value=first),
                gr.update(choices=labels, value=labels[-1] if labels else None)]

    def detail(raw: str, name: str | None) -> Any:
        try:
            run = results_view.find_run(folder_path(raw), name) if name else None
        except AdaptError as error:
            return {"error": str(error)}
        return results_view.run_details(run) if run else {}

    def filtered(raw: str, name: str | None, show_what: str, other_name: str | None) -> list[list[Any]]:
        try:
            path = folder_path(raw)
            run = results_view.find_run(path, name) if name else None
            other = results_view.find_run(path, other_name) if other_name else None
            return results_view.prediction_rows(path, run, show_what, other) if run else []
        except AdaptError as error:
            return [["—", str(error), "", "", False]]

    show_button.click(show, folder, [note, report, run_choice, predictions_run, other_run])
    run_choice.change(detail, [folder, run_choice], details)
    for trigger in (predictions_run, show_only, other_run):
        trigger.change(filtered, [folder, predictions_run, show_only, other_run], predictions)
    return folder


def build(workspace: Workspace) -> gr.Blocks:
    """The board for one workspace."""
    with gr.Blocks(title="adaptlab", analytics_enabled=False) as board:
        gr.Markdown(f"## adaptlab — prompt, retrieve or fine-tune?\nWorkspace: `{workspace.root}`")
        with gr.Tab("Advise", elem_id="tab-advise"):
            advise_page(workspace)
        with gr.Tab("Plan", elem_id="tab-plan") as plan_tab:
            plan_choice = plan_page(workspace)
        with gr.Tab("Run", elem_id="tab-run") as run_tab:
            newest_job, job_choice, run_plan_choice = run_page(workspace)
        with gr.Tab("Results", elem_id="tab-results") as results_tab:
            folder_choice = results_page(workspace)
        board.load(newest_job, None, job_choice)  # a reload finds the job that was running
        # what another page (or the terminal) saved shows up in the lists when a page is opened
        plan_tab.select(lambda: gr.update(choices=workspace.plan_files()), None, plan_choice)
        run_tab.select(lambda: gr.update(choices=workspace.plan_files()), None, run_plan_choice)
        results_tab.select(lambda: gr.update(choices=workspace.results_folders()), None, folder_choice)
    return board


THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def serve(workspace: Workspace, host: str, port: int, share_token: str | None) -> None:
    """Serve the board until interrupted; with a token, every visitor logs in with it (any user name)."""
    import hmac

    auth = (lambda _user, password: hmac.compare_digest(password, share_token)) if share_token else None
    build(workspace).launch(server_name=host, server_port=port, auth=auth, share=False, ssr_mode=False,
                            theme=gr.themes.Default(**THEME_FONTS), css=CSS, quiet=False, footer_links=[])
