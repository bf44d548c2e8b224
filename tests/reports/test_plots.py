"""Figures: PNG bytes of a readable size, one colour per strategy everywhere, None when there is nothing to draw."""
from __future__ import annotations

import struct

from base import registry
from reports import plots
from reports.table import results_frame


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_colours_stay_with_the_strategy_kind_and_shade_repeats():
    first = plots.strategy_colours([("zero_shot", "zero_shot"), ("lora-r8", "lora"), ("lora-r16", "lora")])
    other_report = plots.strategy_colours([("lora", "lora"), ("mystery", "not-a-strategy")])
    assert first["lora-r8"] == other_report["lora"] == registry.get("lora").colour
    assert first["lora-r16"] not in (first["lora-r8"], first["zero_shot"])  # a darker shade of LoRA's colour
    assert other_report["mystery"] == registry.FALLBACK_COLOUR


def test_each_figure_draws_from_the_sst2_results(sst2_run_list):
    frame = results_frame(sst2_run_list)
    colours = plots.strategy_colours(list(zip(frame["label"], frame["strategy"])))
    ok = [run for run in sst2_run_list if run.status.value == "ok"]
    figures = [plots.accuracy_vs_cost(frame, colours), plots.forgetting_bars(ok, colours),
               plots.latency_memory_bars(frame, colours), plots.loss_curves(ok, colours)]
    for figure in figures:
        width, height = png_size(figure)
        assert 700 <= width <= 1400 and 400 <= height <= 700


def test_nothing_to_draw_gives_none(run_maker):
    bare = [run_maker(strategy="zero_shot", score=0.5), run_maker(strategy="failed", status="failed", score=None)]
    frame = results_frame(bare)
    colours = plots.strategy_colours(list(zip(frame["label"], frame["strategy"])))
    assert plots.accuracy_vs_cost(frame, colours) is None  # no cost recorded
    assert plots.forgetting_bars(bare, colours) is None
    assert plots.latency_memory_bars(frame, colours) is None
    assert plots.loss_curves(bare, colours) is None
