"""Data-parallel evaluation: under a multi-process launch each process computes its share of a list of items and every
process gets all the per-item results back, in the items' order.

The split is accelerate's `split_between_processes` (contiguous, the first processes get one more) and the merge its
`gather_object` (an all-gather, on gloo as on NCCL), so concatenating the shares in process order is the original
order, and metrics computed from the merged list are those of a one-process run. Outside a distributed run (no
process group, or one process) a call simply runs on every item. accelerate's DataLoader sharding is not used: it
evens out the processes' batches by repeating items, which would then be scored twice.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")
Progress = Callable[[int], None]


def processes() -> Any | None:
    """accelerate's PartialState when this process is one of several in a live process group; None otherwise."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
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
    """`progress` advanced by total/mine steps for each step of this process's share (rounded, summing to total)."""
    if progress is None or mine == total:
        return progress
    done = reported = 0

    def advance(count: int) -> None:
        nonlocal done, reported
        done += count
        reached = round(done * total / mine)
        progress(reached - reported)
        reported = reached

    return advance


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
