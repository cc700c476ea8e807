"""Test datasets: generated JPEG faces stand-ins written as real pair shards."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from binconv.dataset_writer import write_dataset
from binconv.manifest import Manifest, SourceInfo
from binconv.shardwriter import Pair

SOURCE = SourceInfo(name="generated.bin", size=0, sha256="0" * 64)


def make_image(seed: int, size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """Return an RGB uint8 image (height, width, 3) of waves plus noise, fixed by `seed`."""
    rng = np.random.default_rng(seed)
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.01, 0.2, size=3)
        wave = 127 + 100 * np.sin(fx * x + fy * y + phase * 10)
        channels.append(wave + rng.normal(0, 12, size=(height, width)))
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def encode(image: np.ndarray, fmt: str = "JPEG", **options: object) -> bytes:
    """Encode an RGB or grayscale uint8 array with PIL."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, fmt, **options)
    return out.getvalue()


def make_pairs(num_pairs: int, seed: int = 0) -> list[Pair]:
    """Return `num_pairs` pairs of distinct JPEGs; every third pair is a negative."""
    return [
        Pair(
            index,
            encode(make_image(seed * 100_000 + 2 * index)),
            encode(make_image(seed * 100_000 + 2 * index + 1)),
            issame=index % 3 != 2,
        )
        for index in range(num_pairs)
    ]


def write_pairs(root: Path, name: str, pairs: list[Pair], pairs_per_shard: int) -> Manifest:
    """Write `pairs` as dataset `name` under `root` and return its manifest."""
    return write_dataset(str(root), name, pairs, SOURCE, pairs_per_shard)
