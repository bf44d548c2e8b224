"""The results frame and what is derived from it: intervals, best-marking, the Pareto front, the headline."""
from __future__ import annotations

import math

import pytest

from base.errors import AdaptError
from reports.table import DIRECTIONS, best_mask, load_results, pareto_front, recommend, results_frame


def row(frame, label):
    return frame[frame["label"] == label].iloc[0]


def test_frame_has_one_row_per_run_cheapest_strategy_first(sst2_results):
    frame = load_results(sst2_results)
    assert frame["label"].tolist() == ["zero_shot", "few_shot", "lora", "qlora", "full_ft"]
    lora = row(frame, "lora")
    assert (lora["score"], lora["score_low"], lora["score_high"], lora["n"]) == (0.82, 0.77, 0.87, 200)
    assert lora["cost_usd"] == pytest.approx(8.0)  # $3 to train + $5 per 1M queries
    assert lora["tokens_per_query"] == 62
    assert lora["retained"] == 0.99
    assert lora["forgetting_delta"] == pytest.approx((-0.01 + (0.594 - 0.6)) / 2)
    full = row(frame, "full_ft")
    assert full["worst_delta"] == pytest.approx(-0.06)
    assert full["significant_drops"] == "arc_easy"  # its delta interval lies below zero
    failed = row(frame, "qlora")
    assert failed["status"] == "failed" and math.isnan(failed["score"]) and "out of memory" in failed["error"]


def test_best_mask_follows_direction_and_marks_ties(sst2_results):
    frame = load_results(sst2_results)
    ok = frame[frame["status"] == "ok"].set_index("label")
    assert ok.index[best_mask(ok["score"], DIRECTIONS["score"]).to_numpy()].tolist() == ["full_ft"]
    assert ok.index[best_mask(ok["train_time_s"], DIRECTIONS["train_time_s"]).to_numpy()].tolist() == ["zero_shot", "few_shot"]
    assert ok.index[best_mask(ok["peak_memory_mb"], DIRECTIONS["peak_memory_mb"]).to_numpy()].tolist() == ["zero_shot"]
    assert ok.index[best_mask(ok["forgetting_delta"], DIRECTIONS["forgetting_delta"]).to_numpy()].tolist() == ["lora"]


def test_best_mask_marks_nothing_without_two_distinct_values(sst2_results):
    frame = load_results(sst2_results)
    assert not best_mask(frame["usd_per_1m_queries"].head(1), "lower").any()
    assert not best_mask(frame["total_params"].dropna(), "lower").any()  # every run has the same total


@pytest.mark.parametrize("costs, scores, expected", [
    ([1, 2, 3], [0.5, 0.7, 0.9], [True, True, True]),          # each costs more and scores more
    ([1, 2, 3], [0.9, 0.7, 0.5], [True, False, False]),        # the cheapest is also the best
    ([1, 2, 2, 5], [0.6, 0.8, 0.7, 0.8], [True, True, False, False]),  # same cost, lower score; same score, dearer
    ([1, 1], [0.5, 0.5], [True, True]),                       # identical points do not dominate each other
    ([1, float("nan"), 3], [0.5, 0.9, 0.6], [True, False, True]),  # unknown cost: not on the front, beats no one
])
def test_pareto_front(costs, scores, expected):
    assert pareto_front(costs, scores) == expected


def test_cheaper_strategy_within_the_best_interval_is_recommended(sst2_run_list):
    frame = results_frame(sst2_run_list)
    pick = recommend(frame, "sst2")
    assert (pick.label, pick.best_label, pick.cheaper_within_ci) == ("lora", "full_ft", True)
    assert len(pick.sentences) == 3
    assert "$8.00 instead of $17.00" in pick.sentences[1]
    assert "full_ft loses general ability" in pick.sentences[2]


def test_best_wins_when_nothing_cheaper_is_inside_its_interval(sst2_run_list, run_maker):
    runs = [run for run in sst2_run_list if run.label != "full_ft"]
    runs.append(run_maker(strategy="full_ft", score=0.90, ci=(0.86, 0.94),
                          cost={"usd_train": 12.0, "usd_per_1m_queries": 5.0},
                          forgetting={"retained": 0.9, "benchmarks": {
                              "arc_easy": {"base": 0.5, "adapted": 0.4, "delta": -0.1, "ci_low": -0.2, "ci_high": -0.02}}}))
    pick = recommend(results_frame(runs), "sst2")
    assert (pick.label, pick.cheaper_within_ci) == ("full_ft", False)
    assert "runner-up, lora, scores 0.820" in pick.sentences[1]
    assert pick.sentences[2].startswith("Caution: full_ft loses general ability")
    assert "largest drop arc_easy -0.100" in pick.sentences[2]


def test_lower_retained_without_a_significant_drop_is_not_called_forgetting(sst2_run_list, run_maker):
    """Small benchmark subsets move the mean by chance: only an interval below zero earns the caution."""
    runs = [run for run in sst2_run_list if run.label != "full_ft"]
    runs.append(run_maker(strategy="full_ft", score=0.90, ci=(0.86, 0.94),
                          cost={"usd_train": 12.0, "usd_per_1m_queries": 5.0}, forgetting={"retained": 0.9, "benchmarks": {}}))
    sentence = recommend(results_frame(runs), "sst2").sentences[2]
    assert sentence == ("full_ft keeps 90% of the base model's general-benchmark score: "
                        "no significant loss of general ability was measured.")


def test_without_costs_the_intrinsic_strategy_order_decides_cheaper(run_maker):
    runs = [run_maker(strategy="full_ft", score=0.80, ci=(0.70, 0.90)),
            run_maker(strategy="few_shot", score=0.75, ci=(0.65, 0.85))]
    pick = recommend(results_frame(runs), "sst2")
    assert pick.label == "few_shot" and "cheaper strategy" in pick.sentences[1]
    assert "leaves the model's weights unchanged" in pick.sentences[2]


def test_no_successful_run_gives_no_recommendation(run_maker):
    frame = results_frame([run_maker(status="failed", score=None, error="boom")])
    pick = recommend(frame, "sst2")
    assert pick.label is None and "1 of 1 runs failed" in pick.sentences[1]


def test_corrupt_run_file_is_named(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "broken.json").write_text("{not json")
    with pytest.raises(AdaptError) as error:
        load_results(tmp_path)
    assert error.value.file.endswith("broken.json")
