"""Few-shot demonstrations: balanced over labels by default, seeded, and the same draw for the same seed."""
from __future__ import annotations

from collections import Counter

from base.plan import FewShotSettings
from runners.common import TaskData
from base.data import Example
from runners.few_shot import balanced_pick, choose_demos


def _pool(labels):
    return [Example(id=str(i), prompt=f"text {i}", target=label) for i, label in enumerate(labels)]


def test_balanced_pick_caps_each_label_and_tops_up_when_one_runs_out():
    pool = _pool(["pos"] * 8 + ["neg"] * 2)
    assert balanced_pick(range(10), pool, 4, 2) == [0, 1, 8, 9]  # first two of each label, in candidate order
    assert balanced_pick(range(10), pool, 6, 2) == [0, 1, 2, 8, 9, 3]  # neg runs out after 2: topped up with pos
    assert balanced_pick([9, 0, 8, 1], pool, 3, 3) == [9, 0, 8]  # cap 1 per label, then topped up


def test_random_demos_are_balanced_and_seeded():
    pool = _pool(["positive"] * 90 + ["negative"] * 10)  # a skewed pool: an unbalanced draw would be mostly positive
    evaluation = _pool(["positive", "negative"] * 10)
    data = TaskData(train=pool, eval=evaluation, labels=["negative", "positive"], corpus=None)
    demos = choose_demos(FewShotSettings(k=4), data, seed=0, device="cpu")
    assert all(Counter(d.target for d in row) == {"positive": 2, "negative": 2} for row in demos)
    assert demos == choose_demos(FewShotSettings(k=4), data, seed=0, device="cpu")
    assert demos != choose_demos(FewShotSettings(k=4), data, seed=1, device="cpu")
    unbalanced = choose_demos(FewShotSettings(k=4, balanced=False), data, seed=0, device="cpu")
    assert sum(d.target == "positive" for row in unbalanced for d in row) > 2 * len(unbalanced)


def test_rotations_put_every_demonstration_last_once_and_keep_the_given_order_first():
    from runners.common import rotations

    demos = [_pool(["a", "b", "c", "d"]), _pool(["e", "f", "g", "h"])]
    orders = rotations(demos, 4)
    assert orders[0] == demos
    assert [order[0][-1].target for order in orders] == ["d", "a", "b", "c"]
    assert all(sorted(e.id for e in order[1]) == ["0", "1", "2", "3"] for order in orders)  # same demos, reordered
    assert len(rotations(demos, 9)) == 4 and len(rotations(demos, 1)) == 1  # never more orders than demonstrations
