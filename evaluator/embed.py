"""The embed step: running a model on pair batches and their mirrors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import torch

from binconv.format import pair_key

from .dataset import PairBatch
from .errors import EvaluationError
from .preprocess import ModelInputs

__all__ = ["EmbeddedPairs", "EmbeddingError", "Model", "embed_pairs", "eval_mode", "model_device"]

Model = Callable[[torch.Tensor], torch.Tensor]


class EmbeddingError(EvaluationError):
    """A model whose output cannot be used as embeddings: wrong shape, or NaN or infinity."""


class EmbeddedPairs(NamedTuple):
    """Embeddings of the pairs one reader or rank embedded, row by row in arrival order.

    Row r of every field belongs to pair `indices[r]`. A pair that arrived
    twice has two rows, so the exactly-once check can see it. Without any
    batch, `emb` and `emb_flip` have shape (0, 2, 0), because the embedding
    size is unknown.

    Attributes:
        indices: Pair indices, `int64` of shape (k,).
        emb: Embeddings of img1 and img2, `float32` of shape (k, 2, d), on the CPU.
        emb_flip: Embeddings of the mirrored img1 and img2, like `emb`.
        issame: Whether both images show the same person, `bool` of shape (k,).
    """

    indices: torch.Tensor
    emb: torch.Tensor
    emb_flip: torch.Tensor
    issame: torch.Tensor


@contextlib.contextmanager
def eval_mode(model: Model) -> Iterator[None]:
    """Put a `torch.nn.Module` in eval mode for the block, then restore its previous mode.

    The mode of each submodule is restored, not just the top-level flag, and
    also when the block raises. Callables that are not modules are left alone.
    """
    if not isinstance(model, torch.nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: Model) -> torch.device:
    """Return the device of the model's first parameter or buffer, or the CPU if it has none."""
    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


def embed_pairs(
    model: Model,
    batches: Iterable[PairBatch],
    *,
    device: torch.device | str | None = None,
    autocast: bool = False,
    expected_pairs: int = 0,
) -> EmbeddedPairs:
    """Embed every image of `batches` and its horizontal mirror with `model`.

    The model receives `float32` batches of shape (N, 3, H, W), scaled as the
    classic protocol does, and must return (N, d). It runs in eval mode
    (restored afterwards) under `torch.inference_mode`. The returned tensors
    are ordinary tensors, so collectives may write to them afterwards.

    Args:
        model: A `torch.nn.Module` or any callable from images to embeddings.
        batches: Pair batches, such as a `PairLoader`.
        device: Device to run on; default the model's device.
        autocast: Whether to run the model under `torch.autocast` for the
            device (float16 on CUDA, bfloat16 on CPU). Embeddings are
            converted to `float32` either way.
        expected_pairs: Pairs expected, used to size the result buffers
            once; more pairs than that still fit.

    Raises:
        EmbeddingError: The model returned a non-tensor, a tensor of the
            wrong shape, or values that are not finite.
    """
    device = torch.device(device) if device is not None else model_device(model)
    rows = _RowBuffer(expected_pairs)
    inputs = ModelInputs()
    with torch.inference_mode(), eval_mode(model):
        for batch in batches:
            emb, emb_flip = _embed_batch(model, batch, inputs, device, autocast)
            rows.append(batch, emb, emb_flip)
    return rows.result()


def _embed_batch(
    model: Model, batch: PairBatch, inputs: ModelInputs, device: torch.device, autocast: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    num_pairs = len(batch.indices)
    images = batch.images.to(device, non_blocking=True).flatten(0, 1)
    with torch.autocast(device.type, enabled=autocast):
        output = model(inputs.build(images))
    if not isinstance(output, torch.Tensor) or output.ndim != 2 or len(output) != 4 * num_pairs:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise EmbeddingError(
            f"the model returned {shape} for {4 * num_pairs} images; it must return one "
            "embedding per image, a tensor of shape (images, embedding size)"
        )
    output = output.float().cpu()
    if not torch.isfinite(output).all():
        bad = batch.indices[
            ~torch.isfinite(output).view(2, num_pairs, 2, -1).all(-1).all(-1).all(0)
        ]
        raise EmbeddingError(
            f"the model returned NaN or infinite embeddings for pair {pair_key(int(bad[0]))} "
            f"and {len(bad) - 1} other pairs of this batch"
        )
    emb, emb_flip = output.view(2, num_pairs, 2, -1).unbind(0)
    return emb, emb_flip


class _RowBuffer:
    """Growing result buffers that are filled in place instead of concatenated at the end."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 1)
        self._count = 0
        self._fields: list[torch.Tensor] = []

    def append(self, batch: PairBatch, emb: torch.Tensor, emb_flip: torch.Tensor) -> None:
        values = (batch.indices, emb, emb_flip, batch.issame)
        end = self._count + len(batch.indices)
        if not self._fields or end > len(self._fields[0]):
            self._grow(values, end)
        for field, value in zip(self._fields, values, strict=True):
            field[self._count : end] = value
        self._count = end

    def _grow(self, values: tuple[torch.Tensor, ...], needed: int) -> None:
        while self._capacity < needed:
            self._capacity *= 2
        # Outside inference mode, so the caller may modify the results in place.
        with torch.inference_mode(False):
            grown = [
                torch.empty((self._capacity, *value.shape[1:]), dtype=value.dtype)
                for value in values
            ]
        for new, old in zip(grown, self._fields, strict=False):
            new[: self._count] = old[: self._count]
        self._fields = grown

    def result(self) -> EmbeddedPairs:
        if not self._fields:
            empty = torch.empty(0, 2, 0)
            return EmbeddedPairs(
                torch.empty(0, dtype=torch.int64),
                empty,
                empty.clone(),
                torch.empty(0, dtype=torch.bool),
            )
        indices, emb, emb_flip, issame = (field[: self._count] for field in self._fields)
        return EmbeddedPairs(indices, emb, emb_flip, issame)
