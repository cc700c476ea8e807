"""Tests of the multi-process test harness itself: a hang must fail, not stall."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from .process_group import run_ranks


def rank_one_never_joins(rank: int, world_size: int) -> None:
    if rank == 1:
        time.sleep(600)
    tensors = [torch.zeros(1) for _ in range(world_size)]
    dist.all_gather(tensors, torch.ones(1))


@pytest.mark.timeout(60)
def test_run_ranks_kills_hung_group(tmp_path: Path):
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"ranks \[0, 1\] still running"):
        run_ranks(rank_one_never_joins, 2, tmp_path, join_timeout_s=8)
    assert time.monotonic() - started < 30
