"""No path outside the workspace is read or written: typed, relative, symlinked, or in a plan."""
from __future__ import annotations

import pytest

from base.errors import AdaptError
from ui.workspace import Workspace


@pytest.fixture()
def workspace(tmp_path):
    (tmp_path / "ws" / "data").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("secret")
    return Workspace.at(tmp_path / "ws")


@pytest.mark.parametrize("raw", ["/etc/passwd", "../outside.txt", "data/../../outside.txt", "~/x", "link/outside.txt"])
def test_paths_outside_are_refused(workspace, raw):
    (workspace.root / "link").symlink_to(workspace.root.parent)
    with pytest.raises(AdaptError, match="outside the workspace") as refused:
        workspace.resolve(raw, field="eval")
    assert refused.value.field == "eval"


def test_paths_inside_resolve_and_data_placeholder_reads_only_the_data_cache(workspace, tmp_path):
    assert workspace.resolve("data/x.jsonl") == workspace.root / "data" / "x.jsonl"
    assert workspace.resolve("x.yaml", relative_to=workspace.root / "data") == workspace.root / "data" / "x.yaml"
    assert workspace.readable("{data}/sst2/eval.jsonl").name == "eval.jsonl"
    with pytest.raises(AdaptError, match="outside the workspace"):
        workspace.readable("{data}/../../outside.txt")
    with pytest.raises(AdaptError, match="no path given"):
        workspace.resolve("  ")


def test_lists_only_plans_and_results_inside(workspace):
    (workspace.root / "plan.yaml").write_text("tasks: []\nstrategies: [zero_shot]\n")
    (workspace.root / "notes.yaml").write_text("a: 1\n")
    (workspace.root / "results" / "toy" / "runs").mkdir(parents=True)
    (workspace.root / "results" / "toy" / "runs" / "r.json").write_text("{}")
    assert workspace.plan_files() == ["plan.yaml"]
    assert workspace.results_folders() == ["results/toy"]


def test_a_plan_must_be_a_yaml_file_inside(workspace):
    assert workspace.plan_file("plans/a.yml") == workspace.root / "plans" / "a.yml"
    with pytest.raises(AdaptError, match="not a .yaml file"):
        workspace.plan_file("data/train.jsonl")  # saving a plan there would overwrite the data
    with pytest.raises(AdaptError, match="outside the workspace"):
        workspace.plan_file("../plan.yaml")
