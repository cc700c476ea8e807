"""Tests of `gather_pairs` and `agree_on_failure` without and with a real gloo process group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from evaluator.distributed import agree_on_failure, current_world
from evaluator.embed import EmbeddedPairs
from evaluator.gather import gather_pairs

from .process_group import RankOutcome, run_ranks

FEATURES = 4


def pair_embedding(index: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return the embeddings `(2, FEATURES)` of both images of pair `index`, exact in float16."""
    values = [
        [index + 0.25 * feature + 0.5 * image for feature in range(FEATURES)] for image in (0, 1)
    ]
    return torch.tensor(values, dtype=dtype)


def rank_part(indices: list[int], dtype: torch.dtype = torch.float32) -> EmbeddedPairs:
    """Return the rows of a rank that embedded `indices`: mirrors negated, even pairs same."""
    rows = [pair_embedding(index, dtype) for index in indices]
    emb = torch.stack(rows) if rows else torch.empty((0, 2, FEATURES), dtype=dtype)
    return EmbeddedPairs(
        indices=torch.tensor(indices, dtype=torch.int64),
        emb=emb,
        emb_flip=-emb,
        issame=torch.tensor([index % 2 == 0 for index in indices], dtype=torch.bool),
    )


def assert_rows_of(embedded: EmbeddedPairs, indices: list[int]) -> None:
    """Assert that `embedded` contains exactly the rows of `indices`, in that order."""
    expected = torch.stack([pair_embedding(index, torch.float64) for index in indices])
    assert embedded.indices.tolist() == indices
    assert embedded.issame.tolist() == [index % 2 == 0 for index in indices]
    assert torch.equal(embedded.emb.double(), expected)
    assert torch.equal(embedded.emb_flip.double(), -expected)


# --- without a process group ---------------------------------------------------------------


def test_current_world_without_process_group():
    world = current_world()
    assert world.rank == 0
    assert world.world_size == 1
    assert world.initialized is False
    assert world.device == torch.device("cpu")


def test_gather_single_process_keeps_rows():
    gathered = gather_pairs(rank_part([2, 0, 3, 1]))
    assert_rows_of(gathered.embedded, [2, 0, 3, 1])
    assert gathered.pairs_per_rank == (4,)


def test_gather_single_process_without_rows():
    gathered = gather_pairs(rank_part([]))
    assert gathered.embedded.indices.shape == (0,)
    assert gathered.pairs_per_rank == (0,)


def test_gather_rejects_row_count_mismatch():
    local = rank_part([0, 1])
    with pytest.raises(ValueError, match="expected 3 rows"):
        gather_pairs(local._replace(indices=torch.tensor([0, 1, 2]), issame=torch.ones(3)))


def test_gather_rejects_integer_embeddings():
    emb = torch.ones((1, 2, FEATURES), dtype=torch.int32)
    local = rank_part([0])._replace(emb=emb, emb_flip=emb)
    with pytest.raises(ValueError, match="floating point"):
        gather_pairs(local)


def test_agree_single_process_reraises_error():
    error = KeyError("shard-3")
    with pytest.raises(KeyError) as raised:
        agree_on_failure(error)
    assert raised.value is error
    agree_on_failure(None)


# --- three ranks ---------------------------------------------------------------------------


def _attempt(action: Callable[[], Any]) -> dict[str, Any]:
    """Run one scenario on this rank and describe what it returned or raised."""
    try:
        return {"value": action()}
    except Exception as exc:
        cause = exc.__cause__
        return {
            "error_type": type(exc).__name__,
            "message": str(exc),
            "cause_type": type(cause).__name__ if cause is not None else None,
            "failed_ranks": getattr(exc, "failed_ranks", None),
        }


def _gather(indices: list[int], dtype: torch.dtype = torch.float32):
    gathered = gather_pairs(rank_part(indices, dtype))
    return gathered.embedded, gathered.pairs_per_rank


def _fail_on(ranks: dict[int, Exception], rank: int) -> None:
    agree_on_failure(ranks.get(rank))


def three_rank_scenarios(rank: int, world_size: int) -> dict[str, dict[str, Any]]:
    """Scenarios run in order on one group of 3 ranks; later ones show the group still works."""
    mixed_dtype = {0: torch.float16, 1: torch.bfloat16, 2: torch.float32}
    invalid = rank_part([rank])
    if rank == 2:
        invalid = invalid._replace(
            emb=torch.ones((5, 2, FEATURES)), emb_flip=torch.ones((5, 2, FEATURES))
        )
    return {
        "uneven": _attempt(lambda: _gather(UNEVEN[rank])),
        "mixed_dtypes": _attempt(lambda: _gather([rank, rank + 3], mixed_dtype[rank])),
        "float64": _attempt(lambda: _gather([rank], torch.float64)),
        "one_rank_fails": _attempt(
            lambda: _fail_on({1: RuntimeError("model raised on batch 4")}, rank)
        ),
        "two_ranks_fail": _attempt(
            lambda: _fail_on({2: OSError("shard b unreadable"), 1: ValueError("shard a bad")}, rank)
        ),
        "invalid_rows_on_one_rank": _attempt(lambda: gather_pairs(invalid)),
        "shapes_differ": _attempt(lambda: gather_pairs(rank_part([rank]) if rank else WIDE)),
        "no_rank_has_pairs": _attempt(lambda: _gather([])),
        "after_failures": _attempt(lambda: _gather([rank])),
    }


UNEVEN = {0: [4, 0, 2, 1, 3], 1: [], 2: [6, 5]}
WIDE = EmbeddedPairs(
    torch.tensor([0]),
    torch.ones((1, 2, FEATURES + 1)),
    torch.ones((1, 2, FEATURES + 1)),
    torch.tensor([True]),
)


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, Any]]]:
    outcomes: list[RankOutcome] = run_ranks(
        three_rank_scenarios, 3, Path(tmp_path_factory.mktemp("three_ranks"))
    )
    for rank, outcome in enumerate(outcomes):
        assert outcome.error_type is None, f"rank {rank}: {outcome.traceback}"
    return [outcome.value for outcome in outcomes]


def _scenario(outcomes: list[dict[str, dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    return [rank_outcomes[name] for rank_outcomes in outcomes]


@pytest.mark.timeout(120)
def test_three_ranks_gather_uneven_parts(three_ranks):
    for outcome in _scenario(three_ranks, "uneven"):
        embedded, pairs_per_rank = outcome["value"]
        assert pairs_per_rank == (5, 0, 2)
        assert embedded.emb.dtype == torch.float32
        assert_rows_of(embedded, UNEVEN[0] + UNEVEN[1] + UNEVEN[2])


@pytest.mark.timeout(120)
def test_three_ranks_promote_mixed_dtypes(three_ranks):
    for outcome in _scenario(three_ranks, "mixed_dtypes"):
        embedded, _ = outcome["value"]
        assert embedded.emb.dtype == torch.float32
        assert_rows_of(embedded, [0, 3, 1, 4, 2, 5])


@pytest.mark.timeout(120)
def test_three_ranks_keep_float64_bits(three_ranks):
    for outcome in _scenario(three_ranks, "float64"):
        embedded, _ = outcome["value"]
        assert embedded.emb.dtype == torch.float64
        assert_rows_of(embedded, [0, 1, 2])


@pytest.mark.timeout(120)
def test_three_ranks_all_raise_when_one_fails(three_ranks):
    outcomes = _scenario(three_ranks, "one_rank_fails")
    for rank, outcome in enumerate(outcomes):
        assert outcome["error_type"] == "DistributedEvaluationError", f"rank {rank}"
        assert outcome["failed_ranks"] == (1,)
        assert "failed on rank 1 of 3" in outcome["message"]
        assert "RuntimeError: model raised on batch 4" in outcome["message"]
    assert outcomes[1]["cause_type"] == "RuntimeError"
    assert outcomes[0]["cause_type"] is None
    assert outcomes[2]["cause_type"] is None


@pytest.mark.timeout(120)
def test_three_ranks_report_lowest_failing_rank(three_ranks):
    for outcome in _scenario(three_ranks, "two_ranks_fail"):
        assert outcome["failed_ranks"] == (1, 2)
        assert "failed on ranks 1, 2 of 3" in outcome["message"]
        assert "ValueError: shard a bad" in outcome["message"]
        assert "shard b" not in outcome["message"]


@pytest.mark.timeout(120)
def test_three_ranks_all_raise_on_invalid_rows(three_ranks):
    for outcome in _scenario(three_ranks, "invalid_rows_on_one_rank"):
        assert outcome["error_type"] == "DistributedEvaluationError"
        assert outcome["failed_ranks"] == (2,)
        assert "expected 1 rows" in outcome["message"]


@pytest.mark.timeout(120)
def test_three_ranks_reject_differing_shapes(three_ranks):
    for outcome in _scenario(three_ranks, "shapes_differ"):
        assert outcome["error_type"] == "ValueError"
        assert "rank 0: (2, 5), rank 1: (2, 4), rank 2: (2, 4)" in outcome["message"]


@pytest.mark.timeout(120)
def test_three_ranks_gather_without_rows(three_ranks):
    for outcome in _scenario(three_ranks, "no_rank_has_pairs"):
        embedded, pairs_per_rank = outcome["value"]
        assert pairs_per_rank == (0, 0, 0)
        assert embedded.indices.shape == (0,)


@pytest.mark.timeout(120)
def test_three_ranks_gather_again_after_failures(three_ranks):
    for outcome in _scenario(three_ranks, "after_failures"):
        embedded, pairs_per_rank = outcome["value"]
        assert pairs_per_rank == (1, 1, 1)
        assert_rows_of(embedded, [0, 1, 2])


# --- two ranks -----------------------------------------------------------------------------


def two_rank_scenarios(rank: int, world_size: int) -> dict[str, dict[str, Any]]:
    return {
        "bfloat16": _attempt(lambda: _gather([1 - rank], torch.bfloat16)),
        "one_rank_empty": _attempt(lambda: _gather([[0, 1, 2], []][rank])),
        "world": _attempt(lambda: current_world()),
    }


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, Any]]]:
    outcomes = run_ranks(two_rank_scenarios, 2, Path(tmp_path_factory.mktemp("two_ranks")))
    for rank, outcome in enumerate(outcomes):
        assert outcome.error_type is None, f"rank {rank}: {outcome.traceback}"
    return [outcome.value for outcome in outcomes]


@pytest.mark.timeout(120)
def test_two_ranks_see_gloo_world(two_ranks):
    for rank, outcome in enumerate(_scenario(two_ranks, "world")):
        world = outcome["value"]
        assert (world.rank, world.world_size, world.backend) == (rank, 2, "gloo")
        assert world.device == torch.device("cpu")


@pytest.mark.timeout(120)
def test_two_ranks_gather_bfloat16_unchanged(two_ranks):
    for outcome in _scenario(two_ranks, "bfloat16"):
        embedded, _ = outcome["value"]
        assert embedded.emb.dtype == torch.bfloat16
        assert_rows_of(embedded, [1, 0])


@pytest.mark.timeout(120)
def test_two_ranks_gather_when_one_has_no_pairs(two_ranks):
    for outcome in _scenario(two_ranks, "one_rank_empty"):
        embedded, pairs_per_rank = outcome["value"]
        assert pairs_per_rank == (3, 0)
        assert_rows_of(embedded, [0, 1, 2])
