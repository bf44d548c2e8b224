"""Data-parallel evaluation: under a multi-process launch each process computes its share of a list of items and every
process gets all the per-item results back, in the items' order.

The split is accelerate's `split_between_processes` (contiguous, the first processes get one more) and the merge its
`gather_object` (an all-gather, on gloo as on NCCL), so concatenating the shares in process order is the original
order, and metrics computed from the merged list are those of a one-process run. Outside a distributed run (no
process group, one process, or inside `alone()`) a call simply runs on every item. Written here rather than taken
from accelerate's DataLoader sharding because that pads the last batch with repeated items.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")
Progress = Callable[[int], None]
_alone = False  # set inside `alone()`: this process works by itself, whatever the launch


def processes() -> Any | None:
    """accelerate's PartialState when this process is one of several in a live process group; None otherwise."""
    import torch.distributed as dist

    if _alone or not (dist.is_available() and dist.is_initialized()):
        return None
    from accelerate import PartialState

    state = PartialState()
    return state if state.num_processes > 1 else None


def is_main_process() -> bool:
    """The process that reports: process 0 of a distributed run, or the only one."""
    state = processes()
    return state is None or state.is_main_process


def share(count: int) -> list[int]:
    """The indices of `range(count)` this process works on (all of them outside a distributed run)."""
    state = processes()
    if state is None:
        return list(range(count))
    with state.split_between_processes(list(range(count))) as mine:
        return list(mine)


def map_shards(compute: Callable[[list[int], Progress | None], list[T]], count: int,
               progress: Progress | None = None) -> list[T]:
    """`compute(indices, progress)` returns one result per index; each process computes its share of `range(count)`
    and every process returns all `count` results in index order. `progress` (the main process's bar) is advanced
    as if this process did all the work, so the bar still ends full."""
    mine = share(count)
    state = processes()
    results = compute(mine, _scaled(progress, count, len(mine))) if mine else []
    if len(results) != len(mine):
        raise RuntimeError(f"a shard of {len(mine)} items returned {len(results)} results")
    if state is None:
        return results
    from accelerate.utils import gather_object

    return gather_object(results)


def _scaled(progress: Progress | None, total: int, mine: int) -> Progress | None:
    if progress is None or mine == total:
        return progress
    done = {"mine": 0, "reported": 0}

    def advance(count: int) -> None:
        done["mine"] += count
        reached = round(done["mine"] * total / mine)
        progress(reached - done["reported"])
        done["reported"] = reached

    return advance


def everyone(condition: bool) -> bool:
    """Whether `condition` holds on every process (outside a distributed run: the condition itself)."""
    if processes() is None:
        return condition
    from accelerate.utils import gather_object

    return all(gather_object([bool(condition)]))


def wait_for_everyone() -> None:
    state = processes()
    if state is not None:
        state.wait_for_everyone()


@contextmanager
def alone() -> Iterator[None]:
    """Work in this process only (no collectives), e.g. the main process scoring a model only it can see while the
    others wait at `wait_for_everyone()`."""
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def report(message: str) -> None:
    """One line per process in the run's output.log, saying what it computed (multi-process runs only)."""
    state = processes()
    if state is not None:
        sys.stderr.write(f"process {state.process_index}/{state.num_processes}: {message}\n")  # one write: whole lines
        sys.stderr.flush()


def report_share(what: str, count: int) -> None:
    """How many of `count` items this process computes, as a `report` line."""
    if processes() is not None:
        report(f"{what} {len(share(count))} of {count}")
