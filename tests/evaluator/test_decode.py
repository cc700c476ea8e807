"""Tests that decoding gives PIL's pixels, and OpenCV's, for real and generated images."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg
from PIL import Image

from binconv.errors import DatasetError
from evaluator.decode import _SIMPLEJPEG_KINDS, decode_image

from .shardbuilder import encode, make_image


def pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def opencv_rgb(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def real_jpegs(shared_data: Path) -> list[bytes]:
    folder = sorted((shared_data / "small_dataset" / "images").glob("*.jpg"))
    with open(shared_data / "small_lfw.bin", "rb") as f:
        images, _ = pickle.load(f, encoding="bytes")
    return [path.read_bytes() for path in folder] + [bytes(image) for image in images]


def generated_jpegs() -> dict[str, bytes]:
    image = make_image(7)
    odd = make_image(8, size=(113, 111))
    gray = image.mean(axis=2).astype(np.uint8)
    return {
        "4:2:0": encode(image, subsampling=2, quality=90),
        "4:2:2": encode(image, subsampling=1, quality=90),
        "4:4:4": encode(image, subsampling=0, quality=95),
        "4:2:0 odd size": encode(odd, subsampling=2),
        "progressive": encode(image, progressive=True),
        "low quality": encode(image, quality=20),
        "grayscale": encode(gray),
    }


def test_real_faces_decode_like_pil_and_opencv(shared_data: Path) -> None:
    jpegs = real_jpegs(shared_data)
    assert len(jpegs) == 30
    for data in jpegs:
        decoded = decode_image(data, "test")
        assert decoded.shape == (112, 112, 3)
        assert np.array_equal(decoded, pil_rgb(data))
        assert np.array_equal(decoded, opencv_rgb(data))


@pytest.mark.parametrize("kind", list(generated_jpegs()))
def test_generated_jpeg_decodes_like_pil_and_opencv(kind: str) -> None:
    data = generated_jpegs()[kind]
    decoded = decode_image(data, "test")
    assert decoded.dtype == np.uint8
    assert decoded.shape[2] == 3
    assert np.array_equal(decoded, pil_rgb(data))
    assert np.array_equal(decoded, opencv_rgb(data))


@pytest.mark.parametrize("kind", list(generated_jpegs()))
def test_simplejpeg_alone_matches_pil(kind: str) -> None:
    # The fast path must be taken for these kinds, and must be exact on its own.
    data = generated_jpegs()[kind]
    _, _, colorspace, subsampling = simplejpeg.decode_jpeg_header(data)
    assert (colorspace, subsampling) in _SIMPLEJPEG_KINDS
    assert np.array_equal(simplejpeg.decode_jpeg(data, colorspace="RGB"), pil_rgb(data))


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = make_image(3).mean(axis=2).astype(np.uint8)
    decoded = decode_image(encode(gray), "test")
    assert np.array_equal(decoded[..., 0], decoded[..., 1])
    assert np.array_equal(decoded[..., 0], decoded[..., 2])


def test_cmyk_jpeg_decoded_by_pil() -> None:
    out = io.BytesIO()
    Image.fromarray(make_image(5)).convert("CMYK").save(out, "JPEG")
    data = out.getvalue()
    assert np.array_equal(decode_image(data, "test"), pil_rgb(data))


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("BMP", "RGB"), ("WEBP", "RGB")],
)
def test_other_formats_decoded_by_pil(fmt: str, mode: str) -> None:
    out = io.BytesIO()
    Image.fromarray(make_image(6)).convert(mode).save(out, fmt, lossless=True)
    data = out.getvalue()
    decoded = decode_image(data, "test")
    assert decoded.shape == (112, 112, 3)
    assert np.array_equal(decoded, pil_rgb(data))


def test_truncated_jpeg_names_image() -> None:
    data = encode(make_image(1))
    with pytest.raises(DatasetError, match="shard x: pair 000001 img2: cannot decode the image"):
        decode_image(data[: len(data) // 2], "shard x: pair 000001 img2")


def test_not_an_image_names_image() -> None:
    with pytest.raises(DatasetError, match="pair 000002 img1: cannot decode the image"):
        decode_image(b"not an image at all", "pair 000002 img1")


def test_unknown_data_message_has_no_object_address() -> None:
    with pytest.raises(DatasetError) as caught:
        decode_image(b"not an image at all", "pair 000002 img1")

    message = str(caught.value)
    assert "not a known image format" in message
    assert "object at 0x" not in message
