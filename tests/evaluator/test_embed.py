"""Tests for the embed step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluator.dataset import PairBatch
from evaluator.embed import EmbeddingError, embed_pairs, eval_mode

from .shardbuilder import make_image


class ChannelStats(torch.nn.Module):
    """Per-image embedding: the mean of each channel over the left half and the whole image."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(p=0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        width = images.shape[-1]
        left = images[..., : width // 2].mean(dim=(2, 3))
        return self.dropout(torch.cat((left, images.mean(dim=(2, 3))), dim=1))


def make_batch(indices: list[int]) -> PairBatch:
    images = np.stack(
        [np.stack([make_image(2 * i), make_image(2 * i + 1)]) for i in indices]
    ).transpose(0, 1, 4, 2, 3)
    return PairBatch(
        indices=torch.tensor(indices),
        images=torch.from_numpy(np.ascontiguousarray(images)),
        issame=torch.tensor([i % 2 == 0 for i in indices]),
    )


def reference_embedding(image: np.ndarray, mirror: bool) -> np.ndarray:
    """The ChannelStats embedding of one HWC uint8 image, computed plainly in float32."""
    scaled = ((image.astype(np.float32) / np.float32(255)) - np.float32(0.5)) / np.float32(0.5)
    chw = torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)[None]))
    if mirror:
        chw = torch.flip(chw, dims=(-1,))
    return ChannelStats().eval()(chw)[0].numpy()


def test_embeddings_match_plain_computation() -> None:
    result = embed_pairs(ChannelStats(), [make_batch([4, 1]), make_batch([0, 2, 3])])
    assert result.indices.tolist() == [4, 1, 0, 2, 3]
    assert result.issame.tolist() == [True, False, True, True, False]
    assert tuple(result.emb.shape) == (5, 2, 6)
    for row, index in enumerate(result.indices.tolist()):
        for slot in (0, 1):
            image = make_image(2 * index + slot)
            assert np.array_equal(result.emb[row, slot].numpy(), reference_embedding(image, False))
            flipped = reference_embedding(image, True)
            assert np.array_equal(result.emb_flip[row, slot].numpy(), flipped)


def test_mirror_embedding_differs() -> None:
    result = embed_pairs(ChannelStats(), [make_batch([0])])
    assert not torch.equal(result.emb, result.emb_flip)


def test_buffers_grow_past_expected_pairs() -> None:
    batches = [make_batch([i, i + 1]) for i in range(0, 10, 2)]
    result = embed_pairs(ChannelStats(), batches, expected_pairs=3)
    assert result.indices.tolist() == list(range(10))
    assert torch.equal(result.emb[7], embed_pairs(ChannelStats(), [make_batch([7])]).emb[0])


def test_results_writable_outside_inference_mode() -> None:
    result = embed_pairs(ChannelStats(), [make_batch([0, 1])])
    result.emb.mul_(2)
    assert not result.emb.is_inference()


def test_no_batches_give_empty_result() -> None:
    result = embed_pairs(ChannelStats(), [])
    assert len(result.indices) == 0
    assert result.emb.shape[:2] == (0, 2)


def test_training_mode_restored() -> None:
    model = ChannelStats()
    model.dropout.eval()
    embed_pairs(model, [make_batch([0])])
    assert model.training is True
    assert model.dropout.training is False


def test_mode_restored_when_model_raises() -> None:
    model = ChannelStats()
    with pytest.raises(RuntimeError, match="stop"), eval_mode(model):
        assert model.training is False
        raise RuntimeError("stop")
    assert model.training is True


def test_wrong_output_shape_rejected() -> None:
    with pytest.raises(EmbeddingError, match=r"returned \(4, 2, 3\) for 4 images"):
        embed_pairs(lambda images: images[:, :2, 0, :3], [make_batch([0])])


def test_nan_embedding_names_pair() -> None:
    def model(images: torch.Tensor) -> torch.Tensor:
        output = images.mean(dim=(2, 3))
        output[7, 0] = float("nan")  # rows: 4 images, then their 4 mirrors
        return output

    with pytest.raises(EmbeddingError, match="NaN or infinite embeddings for pair 000009 and 0"):
        embed_pairs(model, [make_batch([3, 9])])


def test_autocast_gives_float32() -> None:
    result = embed_pairs(ChannelStats(), [make_batch([0])], autocast=True)
    assert result.emb.dtype == torch.float32
