"""The published GPU runs (bench/data/published_training_peaks.csv) held against the estimator: a change to
advisor/estimate.py or advisor/hardware.py that breaks the fit fails here."""
from __future__ import annotations

import csv
import re

import pytest

from advisor import estimate as est
from tests.advisor.conftest import bench_module
from advisor import hardware

SOURCE_COLUMNS = ("source", "repo", "path", "commit", "published")


@pytest.fixture(scope="module")
def bench():
    yield from bench_module("estimate_vs_published")


@pytest.fixture(scope="module")
def result(bench):
    return bench.evaluate(bench.load_table(), with_accelerate=False)


def test_every_row_names_its_source_and_settings(bench):
    with open(bench.TABLE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    sources = {r["source"].split(" (")[0] for r in rows}
    assert {"peft method_comparison", "torchtune README", "LitGPT resource tables"} <= sources
    for row in rows:
        assert all(row[c].strip() for c in SOURCE_COLUMNS), row["id"]
        assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]), row["id"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["published"]), row["id"]
        assert row["shape_source"].strip() and row["gpu"] in {**hardware.GPUS, **hardware.REFERENCE_GPUS}
        assert row["role"] in ("holdout", "fit:memory", "fit:time", "fit:memory+time")
    assert sum(r["role"] == "holdout" for r in rows) >= len(rows) // 2  # most rows test, few fit


def test_table_shapes_match_the_built_in_ones(bench):
    rows = {r.shape.name: r.shape for r in bench.load_table()}
    for name in ("llama-3.2-3b", "llama-3.1-8b"):
        table = rows[next(k for k in rows if k.lower() == name)]
        built_in = est.KNOWN_MODELS[name]
        assert (table.hidden, table.layers, table.kv_heads, table.intermediate, table.vocab, table.tied) == (
            built_in.hidden, built_in.layers, built_in.kv_heads, built_in.intermediate, built_in.vocab, built_in.tied)


def test_peak_memory_meets_the_targets_on_the_published_runs(bench, result):
    errors = {t["row"].id: t["errors"]["ours"] for t in result["table"]}
    assert result["summary"]["ours"]["all"] <= bench.MEMORY_TARGET_MEDIAN
    assert result["summary"]["ours"]["holdout"] <= bench.MEMORY_TARGET_MEDIAN
    worst = {k: v for k, v in errors.items() if abs(v) > bench.MEMORY_TARGET_ROW}
    assert not worst, worst


def test_ours_beats_each_rule_of_thumb_on_the_same_rows(result):
    ours = result["summary"]["ours"]["all"]
    for name in ("bytes/param", "static"):
        assert ours < result["summary"][name]["all"], name


def test_time_meets_the_target_where_a_source_gives_it(bench, result):
    timed = [t for t in result["table"] if t["time_error"] is not None]
    assert len(timed) >= 15
    assert all(abs(t["time_error"]) <= bench.TIME_TARGET for t in timed), [
        (t["row"].id, round(t["time_error"])) for t in timed if abs(t["time_error"]) > bench.TIME_TARGET]


def test_the_shipped_constants_are_what_the_fit_rows_give(bench):
    """Constants in the code are the `--fit` output: re-fitting from the `fit` rows alone changes nothing."""
    saved = {name: getattr(module, name) for module, name, _, _ in bench.MEMORY_FITS}
    try:
        fitted = bench.fit(bench.load_table())
    finally:
        for module, name, _, _ in bench.MEMORY_FITS:
            setattr(module, name, saved[name])
    for name, value in saved.items():
        assert fitted[name] == pytest.approx(value), name
    for gpu_name in bench.MFU_FITS:
        assert fitted[f"mfu[{gpu_name}]"] == pytest.approx(bench.device(gpu_name).mfu, abs=0.002), gpu_name


def test_advise_bands_cover_the_published_errors(result):
    """The ± advise shows on a checked GPU is the table's 80th percentile (rounded up), not a hopeful number."""
    assert result["summary"]["ours"]["p80"] <= est.ERROR_BANDS["gpu"]["memory"] < result["summary"]["ours"]["p80"] + 2
    assert result["summary"]["time"]["p80"] <= est.ERROR_BANDS["gpu"]["time"] < result["summary"]["time"]["p80"] + 2
    checked = hardware.checked_gpus()
    assert est.error_band(hardware.GPUS["RTX-4090"], "memory") == est.ERROR_BANDS["gpu"]["memory"]
    assert est.error_band(hardware.GPUS["H100"], "time") == est.ERROR_BANDS["gpu"]["time"] * est.UNCHECKED_BAND_FACTOR
    assert "H100" not in checked["memory"] and "A100-80GB" in checked["time"]


def test_accelerate_figure_is_accelerates_own_arithmetic(bench):
    pytest.importorskip("accelerate")
    row = next(r for r in bench.load_table() if r.id == "tt32-3b-packed")
    figure = bench.accelerate_figure(row)
    # float16 "training using Adam": 8 bytes a parameter of the fp32-size model (accelerate counts tied weights twice)
    assert figure == pytest.approx(8 * (row.shape.params + row.shape.vocab * row.shape.hidden), rel=0.01)


def test_main_prints_the_side_by_side_table(bench, capsys):
    assert bench.main(["--no-accelerate"]) == 0
    out = capsys.readouterr().out
    assert "tt31-8b-qlora-4090" in out and "Median |relative error|" in out and "bytes/param" in out
