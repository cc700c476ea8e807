"""Converted datasets built from the real face JPEGs in the shared test data."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from binconv.dataset_writer import write_dataset
from binconv.manifest import Manifest, SourceInfo
from binconv.shardwriter import Pair


def face_images(shared_data: Path) -> list[bytes]:
    """Return the ten real 112x112 face JPEGs of `small_dataset`, one per person."""
    folder = shared_data / "small_dataset" / "images"
    images = [path.read_bytes() for path in sorted(folder.glob("*.jpg"))]
    assert len(images) == 10, f"expected 10 JPEGs in {folder}, found {len(images)}"
    return images


def iter_face_pairs(images: list[bytes], num_pairs: int) -> Iterator[Pair]:
    """Yield `num_pairs` pairs: even ones repeat a face (positive), odd ones join two people."""
    count = len(images)
    for index in range(num_pairs):
        first = index % count
        if index % 2 == 0:
            yield Pair(index, images[first], images[first], True)
        else:
            second = (first + 1 + index // count) % count
            if second == first:
                second = (first + 1) % count
            yield Pair(index, images[first], images[second], False)


def write_face_dataset(
    out_root: str, name: str, shared_data: Path, num_pairs: int, pairs_per_shard: int
) -> Manifest:
    """Write a dataset of `num_pairs` face pairs under `out_root/name` and return its manifest."""
    images = face_images(shared_data)
    digest = hashlib.sha256(f"{name}:{num_pairs}".encode()).hexdigest()
    source = SourceInfo(name=f"{name}.pairs", size=num_pairs, sha256=digest, kind="pairs")
    return write_dataset(
        out_root, name, iter_face_pairs(images, num_pairs), source, pairs_per_shard
    )
