"""Gathering the embeddings that each rank computed for its part of a dataset.

Only tensor collectives are used (`all_gather` and `broadcast`), so the same
code runs on gloo and NCCL and nothing is pickled. Ranks may hold different
numbers of pairs, including none: every rank first sends a fixed-size header
(pair count, dtype, shape), then all ranks pad their part to the largest
count, so every collective has the same shape on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from binconv.errors import BinconvError

from .distributed import WorldInfo, agree_on_failure, all_gather_tensor, current_world

__all__ = ["GatheredPairs", "PairCoverageError", "check_exactly_once", "gather_pairs"]

# Embedding dtypes that can be gathered, in the order of their header codes.
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Number of dimensions after the pair dimension that the header can describe.
_MAX_FEATURE_DIMS = 4
# Pair indices listed in a coverage error message, per kind of problem.
_MAX_LISTED = 8


class PairCoverageError(BinconvError):
    """Pairs that were not embedded exactly once across all ranks and workers."""


@dataclass(frozen=True)
class GatheredPairs:
    """The embeddings of a whole dataset, in pair order, on the CPU of every rank.

    Attributes:
        emb: Embeddings of the original images; row `i` belongs to pair `i`.
        emb_flip: Embeddings of the mirrored images, in the same layout.
        pairs_per_rank: Number of pairs each rank contributed.
    """

    emb: torch.Tensor
    emb_flip: torch.Tensor
    pairs_per_rank: tuple[int, ...]


@dataclass(frozen=True)
class _RankHeader:
    num_pairs: int
    dtype: torch.dtype | None
    feature_shape: tuple[int, ...]


def gather_pairs(
    indices: torch.Tensor,
    emb: torch.Tensor,
    emb_flip: torch.Tensor,
    num_pairs: int,
    world: WorldInfo | None = None,
    describe_pair: Callable[[int], str] | None = None,
) -> GatheredPairs:
    """Gather every rank's embeddings and return the whole dataset's on every rank.

    Every rank must call this once per dataset, also a rank with no pairs.
    A rank whose arguments are invalid makes every rank raise (see
    `agree_on_failure`) instead of leaving the others waiting.

    Args:
        indices: Pair indices of this rank's rows, int64 of shape `(k,)`; `k`
            may be 0 and may differ between ranks.
        emb: Embeddings of this rank's pairs, shape `(k, *feature_shape)`,
            for example `(k, 2, d)` for both images of each pair.
        emb_flip: Embeddings of the mirrored images, same shape and dtype.
        num_pairs: Number of pairs in the dataset.
        world: The process group, by default `current_world()`.
        describe_pair: Maps a pair index to a location such as its shard,
            for error messages.

    Raises:
        DistributedEvaluationError: The arguments were invalid on some rank.
        PairCoverageError: The ranks together did not send each index
            `0 .. num_pairs - 1` exactly once (raised on every rank).
        ValueError: Without a process group, the arguments are invalid.
    """
    world = world or current_world()
    error: Exception | None = None
    try:
        header = _local_header(indices, emb, emb_flip)
    except ValueError as exc:
        error = exc
    agree_on_failure(error, world)

    headers = [_decode_header(row) for row in all_gather_tensor(_encode_header(header), world)]
    dtype, feature_shape = _common_layout(headers)
    counts = [rank_header.num_pairs for rank_header in headers]
    indices_per_rank, rows_per_rank = _gather_rows(
        indices, emb, emb_flip, counts, dtype, feature_shape, world
    )
    check_exactly_once(indices_per_rank, num_pairs, describe_pair)
    return _assemble(indices_per_rank, rows_per_rank, num_pairs, dtype, feature_shape, counts)


def _local_header(indices: torch.Tensor, emb: torch.Tensor, emb_flip: torch.Tensor) -> _RankHeader:
    if indices.dim() != 1 or indices.dtype != torch.int64:
        raise ValueError(
            f"indices must be an int64 tensor of shape (k,), got {indices.dtype} "
            f"of shape {tuple(indices.shape)}"
        )
    if emb.shape != emb_flip.shape or emb.dtype != emb_flip.dtype:
        raise ValueError(
            f"emb ({emb.dtype}, {tuple(emb.shape)}) and emb_flip "
            f"({emb_flip.dtype}, {tuple(emb_flip.shape)}) must have the same shape and dtype"
        )
    if emb.dim() == 0 or emb.shape[0] != indices.shape[0]:
        raise ValueError(
            f"emb has shape {tuple(emb.shape)}, expected {indices.shape[0]} rows, one per index"
        )
    if emb.dtype not in _DTYPES:
        raise ValueError(f"embeddings must be floating point, got {emb.dtype}")
    if emb.dim() - 1 > _MAX_FEATURE_DIMS:
        raise ValueError(f"embeddings may have at most {_MAX_FEATURE_DIMS + 1} dimensions")
    num_pairs = int(indices.shape[0])
    # A rank without pairs may not know the model's output shape or dtype
    # (it never ran the model), so it leaves both to the other ranks.
    if num_pairs == 0:
        return _RankHeader(0, None, ())
    return _RankHeader(num_pairs, emb.dtype, tuple(emb.shape[1:]))


def _encode_header(header: _RankHeader) -> torch.Tensor:
    dtype_code = 0 if header.dtype is None else _DTYPES.index(header.dtype) + 1
    dims = list(header.feature_shape) + [0] * (_MAX_FEATURE_DIMS - len(header.feature_shape))
    values = [header.num_pairs, dtype_code, len(header.feature_shape), *dims]
    return torch.tensor(values, dtype=torch.int64)


def _decode_header(row: torch.Tensor) -> _RankHeader:
    num_pairs, dtype_code, ndim, *dims = (int(value) for value in row.cpu().tolist())
    dtype = None if dtype_code == 0 else _DTYPES[dtype_code - 1]
    return _RankHeader(num_pairs, dtype, tuple(dims[:ndim]))


def _common_layout(headers: Sequence[_RankHeader]) -> tuple[torch.dtype, tuple[int, ...]]:
    """Return the dtype and feature shape of the gathered embeddings.

    Mixed dtypes (a rank under autocast, say) are promoted as PyTorch
    promotes them, so no rank's values are rounded. All ranks compute this
    from the same headers and raise the same error.
    """
    non_empty = [header for header in headers if header.num_pairs > 0]
    shapes = {header.feature_shape for header in non_empty}
    if len(shapes) > 1:
        listed = ", ".join(
            f"rank {rank}: {header.feature_shape}"
            for rank, header in enumerate(headers)
            if header.num_pairs > 0
        )
        raise ValueError(f"ranks produced embeddings of different shapes ({listed})")
    dtype = torch.float32
    if non_empty:
        dtype = non_empty[0].dtype or torch.float32
        for header in non_empty[1:]:
            dtype = torch.promote_types(dtype, header.dtype or dtype)
    return dtype, shapes.pop() if shapes else ()


def _gather_rows(
    indices: torch.Tensor,
    emb: torch.Tensor,
    emb_flip: torch.Tensor,
    counts: Sequence[int],
    dtype: torch.dtype,
    feature_shape: tuple[int, ...],
    world: WorldInfo,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gather each rank's indices and `(k, 2, *feature_shape)` rows, unpadded, on the CPU."""
    max_count = max(counts)
    if max_count == 0:
        no_indices = torch.empty(0, dtype=torch.int64)
        no_rows = torch.empty((0, 2, *feature_shape), dtype=dtype)
        return [no_indices for _ in counts], [no_rows for _ in counts]
    local_count = counts[world.rank]
    padded_indices = torch.full((max_count,), -1, dtype=torch.int64)
    padded_indices[:local_count] = indices.cpu()
    padded_rows = torch.zeros((max_count, 2, *feature_shape), dtype=dtype)
    padded_rows[:local_count, 0] = emb.detach().to("cpu", dtype)
    padded_rows[:local_count, 1] = emb_flip.detach().to("cpu", dtype)

    gathered_indices = all_gather_tensor(padded_indices, world)
    # Sent as raw bytes, so a backend without bfloat16 or float16 support
    # moves them unchanged.
    gathered_bytes = all_gather_tensor(padded_rows.reshape(-1).view(torch.uint8), world)
    indices_per_rank = [
        rank_indices[:count].cpu()
        for rank_indices, count in zip(gathered_indices, counts, strict=True)
    ]
    rows_per_rank = [
        rank_bytes.cpu().view(dtype).reshape(max_count, 2, *feature_shape)[:count]
        for rank_bytes, count in zip(gathered_bytes, counts, strict=True)
    ]
    return indices_per_rank, rows_per_rank


def check_exactly_once(
    indices_per_rank: Sequence[torch.Tensor],
    num_pairs: int,
    describe_pair: Callable[[int], str] | None = None,
) -> None:
    """Check that the ranks together hold each pair index `0 .. num_pairs - 1` exactly once.

    Raises:
        PairCoverageError: An index is missing, repeated or out of range. The
            message lists the first few of each, with the ranks that sent a
            repeated index and, given `describe_pair`, where each pair lives.
    """
    all_indices = torch.cat([*indices_per_rank, torch.empty(0, dtype=torch.int64)])
    in_range = (all_indices >= 0) & (all_indices < num_pairs)
    out_of_range = all_indices[~in_range].tolist()
    counts = torch.bincount(all_indices[in_range], minlength=num_pairs)
    missing = torch.nonzero(counts == 0).flatten().tolist()
    repeated = torch.nonzero(counts > 1).flatten().tolist()
    if not (missing or repeated or out_of_range):
        return

    def where(index: int) -> str:
        return f" in {describe_pair(index)}" if describe_pair is not None else ""

    problems = []
    if missing:
        listed = ", ".join(f"{index}{where(index)}" for index in missing[:_MAX_LISTED])
        problems.append(f"{len(missing)} missing ({listed})")
    if repeated:
        listed = ", ".join(
            f"{index}{where(index)} from ranks {_sending_ranks(indices_per_rank, index)}"
            for index in repeated[:_MAX_LISTED]
        )
        problems.append(f"{len(repeated)} repeated ({listed})")
    if out_of_range:
        listed = ", ".join(str(index) for index in out_of_range[:_MAX_LISTED])
        problems.append(f"{len(out_of_range)} out of range ({listed})")
    raise PairCoverageError(
        f"pairs were not embedded exactly once: expected indices 0 to {num_pairs - 1}, "
        f"got {all_indices.numel()} indices with " + "; ".join(problems)
    )


def _sending_ranks(indices_per_rank: Sequence[torch.Tensor], index: int) -> str:
    ranks = []
    for rank, rank_indices in enumerate(indices_per_rank):
        ranks += [str(rank)] * int((rank_indices == index).sum())
    return " ".join(ranks)


def _assemble(
    indices_per_rank: Sequence[torch.Tensor],
    rows_per_rank: Sequence[torch.Tensor],
    num_pairs: int,
    dtype: torch.dtype,
    feature_shape: tuple[int, ...],
    counts: Sequence[int],
) -> GatheredPairs:
    emb = torch.empty((num_pairs, *feature_shape), dtype=dtype)
    emb_flip = torch.empty((num_pairs, *feature_shape), dtype=dtype)
    for rank_indices, rows in zip(indices_per_rank, rows_per_rank, strict=True):
        emb[rank_indices] = rows[:, 0]
        emb_flip[rank_indices] = rows[:, 1]
    return GatheredPairs(emb, emb_flip, tuple(counts))
