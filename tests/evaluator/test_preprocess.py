"""Tests for resizing, scaling and mirroring against plain reference computations."""

from __future__ import annotations

import logging
import sys

import cv2
import numpy as np
import pytest
import torch

from binconv.errors import DatasetError
from evaluator import preprocess
from evaluator.preprocess import (
    ModelInputs,
    model_inputs,
    prepare_image,
    resize_short,
    scale_images,
    scale_with_table,
)

from .shardbuilder import make_image


def classic_scale(pixels: np.ndarray) -> np.ndarray:
    """The classic scaling, written out in float32 NumPy."""
    return ((pixels.astype(np.float32) / np.float32(255)) - np.float32(0.5)) / np.float32(0.5)


def test_scaling_matches_numpy_for_every_value() -> None:
    values = torch.arange(256, dtype=torch.uint8)
    assert np.array_equal(scale_images(values).numpy(), classic_scale(values.numpy()))


def test_table_matches_numpy_for_every_value() -> None:
    # The table is what CUDA and other devices use; it is checked here on the CPU.
    values = torch.arange(256, dtype=torch.uint8)
    scaled = scale_with_table(values, torch.empty(256))
    assert np.array_equal(scaled.numpy(), classic_scale(values.numpy()))


def test_scaling_matches_torch_cpu_division() -> None:
    images = torch.from_numpy(make_image(1).transpose(2, 0, 1).copy())
    expected = ((images.float() / 255) - 0.5) / 0.5
    assert torch.equal(scale_images(images), expected)
    assert scale_images(images).dtype == torch.float32


def test_model_inputs_append_mirrors() -> None:
    images = torch.from_numpy(np.stack([make_image(i).transpose(2, 0, 1) for i in range(3)]))
    inputs = model_inputs(images)
    assert tuple(inputs.shape) == (6, 3, 112, 112)
    for i in range(3):
        expected = classic_scale(make_image(i)).transpose(2, 0, 1)
        assert np.array_equal(inputs[i].numpy(), expected)
        assert np.array_equal(inputs[3 + i].numpy(), expected[:, :, ::-1])


def test_input_buffer_reused_across_batch_sizes() -> None:
    stack = np.stack([make_image(i).transpose(2, 0, 1) for i in range(5)])
    builder = ModelInputs()
    first = builder.build(torch.from_numpy(stack[:4])).clone()
    second = builder.build(torch.from_numpy(stack[4:]))
    assert torch.equal(first, model_inputs(torch.from_numpy(stack[:4])))
    assert tuple(second.shape) == (2, 3, 112, 112)
    assert torch.equal(second, model_inputs(torch.from_numpy(stack[4:])))


def test_prepare_image_transposes_without_resizing() -> None:
    image = make_image(2)
    prepared = prepare_image(image, (112, 112), "test")
    assert prepared.dtype == np.uint8
    assert prepared.flags.c_contiguous
    assert np.array_equal(prepared, image.transpose(2, 0, 1))


def test_larger_image_resized_like_opencv_bicubic() -> None:
    image = make_image(3, size=(150, 150))
    prepared = prepare_image(image, (112, 112), "test")
    expected = cv2.resize(image, (112, 112), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(prepared, expected.transpose(2, 0, 1))


def test_resize_short_output_sizes() -> None:
    # MXNet's rule: the longer side becomes size * long // short.
    assert resize_short(make_image(0, size=(150, 100)), 112).shape == (168, 112, 3)
    assert resize_short(make_image(0, size=(100, 130)), 112).shape == (112, 145, 3)
    assert resize_short(make_image(0, size=(96, 96)), 112).shape == (112, 112, 3)


def test_non_square_input_size_resized() -> None:
    image = make_image(4, size=(224, 192))
    prepared = prepare_image(image, (112, 96), "test")
    expected = cv2.resize(image, (96, 112), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(prepared, expected.transpose(2, 0, 1))


def test_wrong_aspect_ratio_rejected() -> None:
    with pytest.raises(DatasetError) as raised:
        prepare_image(make_image(5, size=(100, 120)), (112, 112), "shard a.tar: pair 000004 img1")
    message = str(raised.value)
    assert message.startswith("shard a.tar: pair 000004 img1: image of 120x100 pixels")
    assert "becomes 134x112" in message


def test_resize_without_opencv_uses_pil(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    image = make_image(6, size=(150, 150))
    monkeypatch.setitem(sys.modules, "cv2", None)
    preprocess._import_cv2.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="evaluator.preprocess"):
            resized = resize_short(image, 112)
    finally:
        preprocess._import_cv2.cache_clear()
    assert "OpenCV is not installed" in caplog.text
    assert resized.shape == (112, 112, 3)
    expected = cv2.resize(image, (112, 112), interpolation=cv2.INTER_CUBIC)
    difference = np.abs(resized.astype(int) - expected.astype(int))
    assert difference.max() > 0
    assert difference.mean() < 8
