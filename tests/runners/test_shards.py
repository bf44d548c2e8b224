"""runners.shards: one process computes everything; two real processes (torchrun, gloo) split the items, uneven and
fewer than the processes included, and both get every result back in order."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from runners import shards

WORKER = textwrap.dedent("""
    import json, sys
    from accelerate import PartialState

    state = PartialState(cpu=True)  # joins the process group torchrun set up (gloo), as training runs do
    from runners import shards

    asked, advanced = [], []

    def compute(mine, progress):
        asked.append(list(mine))
        if progress:
            for _ in mine:
                progress(1)
        return [index * 10 for index in mine]

    merged = [shards.map_shards(compute, count, advanced.append if state.is_main_process else None) for count in (5, 1)]
    shards.report_share("items:", 5)
    with open(f"{sys.argv[1]}/rank{state.process_index}.json", "w") as out:
        json.dump({"merged": merged, "asked": asked, "advanced": advanced}, out)
    state.destroy_process_group()
""")


def test_one_process_computes_every_item_in_one_call():
    calls = []
    assert shards.map_shards(lambda mine, _: calls.append(mine) or [i * 10 for i in mine], 4) == [0, 10, 20, 30]
    assert calls == [[0, 1, 2, 3]] and shards.share(3) == [0, 1, 2]


def test_two_processes_split_the_items_and_both_get_all_results_in_order(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([os.getcwd(), *sys.path])), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert first["merged"] == second["merged"] == [[0, 10, 20, 30, 40], [0]]  # every result, in order, on both
    assert first["asked"] == [[0, 1, 2], [0]]  # accelerate's contiguous split: the first process gets the extra item
    assert second["asked"] == [[3, 4]]  # and nothing of a 1-item list (no call at all)
    assert sum(first["advanced"]) == 5 + 1  # the main bar moves as if it did all the work
    assert "process 0/2: items: 3 of 5" in done.stderr and "process 1/2: items: 2 of 5" in done.stderr
