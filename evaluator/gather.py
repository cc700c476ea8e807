"""Gathering the embeddings that each rank computed for its part of a dataset.

Only tensor collectives are used (`all_gather` and `broadcast`), so the same
code runs on gloo and NCCL and nothing is pickled. Ranks may hold different
numbers of pairs, including none: every rank first sends a fixed-size header
(pair count, dtype, shape), then all ranks pad their part to the largest
count, so every collective has the same shape on every rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .distributed import WorldInfo, agree_on_failure, all_gather_tensor, current_world
from .embed import EmbeddedPairs

__all__ = ["GatheredPairs", "gather_pairs"]

# Embedding dtypes that can be gathered, in the order of their header codes.
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Number of dimensions after the pair dimension that the header can describe.
_MAX_FEATURE_DIMS = 4


@dataclass(frozen=True)
class GatheredPairs:
    """The rows that all ranks embedded, on the CPU of every rank.

    Attributes:
        embedded: The rows of rank 0, then those of rank 1, and so on, each
            rank's in the order it embedded them. They are not sorted or
            checked: `evaluator.evaluate.compute_result` does both.
        pairs_per_rank: Number of rows each rank contributed.
    """

    embedded: EmbeddedPairs
    pairs_per_rank: tuple[int, ...]


@dataclass(frozen=True)
class _RankHeader:
    num_pairs: int
    dtype: torch.dtype | None
    feature_shape: tuple[int, ...]


def gather_pairs(local: EmbeddedPairs, world: WorldInfo | None = None) -> GatheredPairs:
    """Gather the rows that every rank embedded and return all of them on every rank.

    Every rank must call this once per dataset, also a rank with no pairs.
    A rank whose rows are invalid makes every rank raise (see
    `agree_on_failure`) instead of leaving the others waiting.

    Args:
        local: This rank's rows. Their number `k` may be 0 and may differ
            between ranks. `emb` and `emb_flip` have shape
            `(k, *feature_shape)`, such as `(k, 2, d)` for both images of
            each pair, and the same dtype. Ranks with rows must agree on the
            feature shape. Mixed dtypes across ranks are promoted.
        world: The process group, by default `current_world()`.

    Raises:
        DistributedEvaluationError: The rows were invalid on some rank.
        ValueError: Without a process group, the rows are invalid; with one,
            the ranks' feature shapes differ (raised on every rank).
    """
    world = world or current_world()
    # Each local step that can raise is followed by an agreement step, which
    # a failing rank joins before raising, so the other ranks never wait in
    # a collective that it skipped.
    try:
        header = _local_header(local)
    except Exception as exc:
        agree_on_failure(exc, world)
        raise
    agree_on_failure(None, world)

    headers = [_decode_header(row) for row in all_gather_tensor(_encode_header(header), world)]
    dtype, feature_shape = _common_layout(headers)
    counts = [rank_header.num_pairs for rank_header in headers]
    try:
        padded_labels, padded_rows = _pad_local_rows(local, max(counts), dtype, feature_shape)
    except Exception as exc:
        agree_on_failure(exc, world)
        raise
    agree_on_failure(None, world)
    labels_per_rank, rows_per_rank = _gather_padded(padded_labels, padded_rows, counts, world)
    labels = torch.cat(labels_per_rank)
    rows = torch.cat(rows_per_rank)
    embedded = EmbeddedPairs(
        indices=labels[:, 0].clone(),
        emb=rows[:, 0].clone(),
        emb_flip=rows[:, 1].clone(),
        issame=labels[:, 1].bool(),
    )
    return GatheredPairs(embedded, tuple(counts))


def _local_header(local: EmbeddedPairs) -> _RankHeader:
    indices, emb, emb_flip = local.indices, local.emb, local.emb_flip
    if local.issame.shape != indices.shape:
        raise ValueError(
            f"issame has shape {tuple(local.issame.shape)}, expected {tuple(indices.shape)}"
        )
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


def _pad_local_rows(
    local: EmbeddedPairs, max_count: int, dtype: torch.dtype, feature_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return this rank's labels and rows on the CPU, padded to `max_count` rows.

    The labels are int64 `(max_count, 2)`: pair index, then issame as 0 or 1.
    The rows are `(max_count, 2, *feature_shape)`: `emb`, then `emb_flip`.
    """
    padded_labels = torch.zeros((max_count, 2), dtype=torch.int64)
    padded_rows = torch.zeros((max_count, 2, *feature_shape), dtype=dtype)
    count = len(local.indices)
    # A rank without rows may hold tensors of another feature shape, such
    # as (0, 2, 0), which cannot be copied into (0, 2, d).
    if count > 0:
        padded_labels[:count, 0] = local.indices.cpu()
        padded_labels[:count, 1] = local.issame.cpu().long()
        padded_rows[:count, 0] = local.emb.detach().to("cpu", dtype)
        padded_rows[:count, 1] = local.emb_flip.detach().to("cpu", dtype)
    return padded_labels, padded_rows


def _gather_padded(
    padded_labels: torch.Tensor,
    padded_rows: torch.Tensor,
    counts: Sequence[int],
    world: WorldInfo,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gather every rank's padded labels and rows, and cut each to its count, on the CPU."""
    if max(counts) == 0:
        return [padded_labels for _ in counts], [padded_rows for _ in counts]
    gathered_labels = all_gather_tensor(padded_labels, world)
    # Sent as raw bytes, so a backend without bfloat16 or float16 support
    # moves them unchanged.
    gathered_bytes = all_gather_tensor(padded_rows.reshape(-1).view(torch.uint8), world)
    labels_per_rank = [
        rank_labels[:count].cpu()
        for rank_labels, count in zip(gathered_labels, counts, strict=True)
    ]
    rows_per_rank = [
        rank_bytes.cpu().view(padded_rows.dtype).reshape(padded_rows.shape)[:count]
        for rank_bytes, count in zip(gathered_bytes, counts, strict=True)
    ]
    return labels_per_rank, rows_per_rank
