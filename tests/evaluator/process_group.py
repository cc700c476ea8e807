"""Running a test function on several ranks of a real gloo process group on this machine.

Each rank is a process started with the `spawn` method. The ranks meet
through a `FileStore` in a temporary folder, so no port is reserved, and
gloo is bound to the loopback interface, so every connection stays on
127.0.0.1. Timeouts at three levels turn a hang into a test failure: the
process group's own timeout for each collective, a deadline for joining the
processes, and the test's `pytest.mark.timeout`.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import pickle
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A collective that waits longer than this raises on the waiting rank.
COLLECTIVE_TIMEOUT_S = 30.0
# All ranks of a group must have exited this long after they were started.
JOIN_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class RankOutcome:
    """What one rank's function returned or raised.

    Attributes:
        value: The return value, or None if the function raised.
        error_type: Class name of the exception raised, or None.
        error_message: `str()` of the exception raised, or None.
        cause_type: Class name of the raised exception's `__cause__`, or None.
        traceback: The formatted traceback, for assertion messages.
    """

    value: Any = None
    error_type: str | None = None
    error_message: str | None = None
    cause_type: str | None = None
    traceback: str = ""


def run_ranks(
    function: Callable[..., Any],
    world_size: int,
    workdir: Path,
    args: tuple[Any, ...] = (),
    join_timeout_s: float = JOIN_TIMEOUT_S,
) -> list[RankOutcome]:
    """Run `function(rank, world_size, *args)` on each rank of a new gloo group.

    `function` must be importable by name (defined at module level), and
    `args` and its return value picklable. Returns each rank's outcome.

    Raises:
        TimeoutError: A rank was still running after `join_timeout_s`; all
            ranks are killed first.
        RuntimeError: A rank exited without reporting an outcome.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_run_rank, args=(function, rank, world_size, str(workdir), args))
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    _join_all(processes, join_timeout_s)
    outcomes = []
    for rank, process in enumerate(processes):
        result_path = workdir / f"rank{rank}.pickle"
        if not result_path.exists():
            raise RuntimeError(f"rank {rank} exited with code {process.exitcode} and no outcome")
        outcomes.append(pickle.loads(result_path.read_bytes()))
    return outcomes


def _join_all(processes: list[Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    running = [rank for rank, process in enumerate(processes) if process.is_alive()]
    if not running:
        return
    for process in processes:
        if process.is_alive():
            # Each rank leads its own process group (see _run_rank), so this
            # also kills its DataLoader workers, which would otherwise live on.
            os.killpg(process.pid, signal.SIGKILL)
            process.join()
    raise TimeoutError(f"ranks {running} still running after {timeout_s:.0f} s; killed them")


def _run_rank(
    function: Callable[..., Any],
    rank: int,
    world_size: int,
    workdir: str,
    args: tuple[Any, ...],
) -> None:
    os.setpgid(0, 0)
    import torch
    import torch.distributed as dist

    # A spawned child inherits "spawn" as its default start method, so its
    # DataLoader workers would import everything again. Ranks that torchrun
    # starts are fresh processes with the platform's default (the first
    # listed), which the tests use too.
    multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    # One intra-op thread per rank, as torchrun sets OMP_NUM_THREADS=1.
    torch.set_num_threads(1)
    store = dist.FileStore(os.path.join(workdir, "store"), world_size)
    dist.init_process_group(
        "gloo",
        store=store,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
    )
    try:
        outcome = RankOutcome(value=function(rank, world_size, *args))
    except Exception as exc:
        cause = exc.__cause__
        outcome = RankOutcome(
            error_type=type(exc).__name__,
            error_message=str(exc),
            cause_type=type(cause).__name__ if cause is not None else None,
            traceback=traceback.format_exc(),
        )
    finally:
        dist.destroy_process_group()
    path = os.path.join(workdir, f"rank{rank}.pickle")
    with open(path + ".partial", "wb") as out:
        pickle.dump(outcome, out)
    os.replace(path + ".partial", path)
