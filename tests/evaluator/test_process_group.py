"""Tests of the multi-process test harness itself: a hang must fail, not stall."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from .process_group import run_ranks


def rank_one_never_joins(rank: int, world_size: int, pid_path: str) -> None:
    if rank == 1:
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(600,))
        child.start()
        Path(pid_path).write_text(str(child.pid))
        time.sleep(600)
    tensors = [torch.zeros(1) for _ in range(world_size)]
    dist.all_gather(tensors, torch.ones(1))


@pytest.mark.timeout(60)
def test_run_ranks_kills_hung_group(tmp_path: Path):
    started = time.monotonic()
    pid_path = tmp_path / "child.pid"
    with pytest.raises(TimeoutError, match=r"ranks \[0, 1\] still running"):
        run_ranks(rank_one_never_joins, 2, tmp_path, args=(str(pid_path),), join_timeout_s=8)
    assert time.monotonic() - started < 30
    child_pid = int(pid_path.read_text())
    # SIGKILL takes effect asynchronously, so the child may still be exiting.
    deadline = time.monotonic() + 10
    while process_state(child_pid) not in ("gone", "Z (zombie)") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_state(child_pid) in ("gone", "Z (zombie)")


def process_state(pid: int) -> str:
    """Return the State field of /proc/PID/status, or "gone" once the process was reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return "gone"
    return next(line for line in status.splitlines() if line.startswith("State:")).split(None, 1)[1]
