"""Image folders and pair lists made from the real faces of the shared test data.

`small_lfw.bin` gives ten people with two images each (its ten positive
pairs), and `small_dataset/` ten more people with one image each. Matched
pairs come from the former, mismatched pairs join people of both.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ExpectedPair = tuple[bytes, bytes, bool]


@dataclass(frozen=True)
class FaceFolder:
    """An image folder with an LFW pair list and a CSV pair list for it.

    Attributes:
        root: The image folder.
        lfw_pairs: `pairs.txt` with 2 sets of 5 matched and 5 mismatched pairs.
        lfw_expected: The pairs of `lfw_pairs` in list order, taken from the
            source data rather than from the folder.
        csv_pairs: `pairs.csv` with a header, 20 pairs and one PNG image.
        csv_expected: The pairs of `csv_pairs`, likewise.
    """

    root: Path
    lfw_pairs: Path
    lfw_expected: list[ExpectedPair]
    csv_pairs: Path
    csv_expected: list[ExpectedPair]


def read_small_lfw_images(small_lfw_bin: Path) -> list[bytes]:
    """Return the 20 encoded images of `small_lfw.bin` as bytes, in file order."""
    # pickle.load is safe here only because this is a known, trusted test file.
    with small_lfw_bin.open("rb") as f:
        images, _ = pickle.load(f)
    return [np.asarray(image).tobytes() for image in images]


def read_small_dataset_images(shared_data: Path) -> list[bytes]:
    """Return the 10 JPEGs of `small_dataset/`, in the order of its `label.txt`."""
    folder = shared_data / "small_dataset"
    lines = (folder / "label.txt").read_text().split("\n")
    return [(folder / line.split("\t")[0]).read_bytes() for line in lines if line.strip()]


def lfw_name(person: int) -> str:
    """Return the folder name of person `person` of `small_lfw.bin`."""
    return f"Lfw_Person_{person:02d}"


def other_name(person: int) -> str:
    """Return the folder name of person `person` of `small_dataset/`."""
    return f"Other_Person_{person:02d}"


def lfw_path(name: str, number: int) -> str:
    """Return the LFW-layout path of image `number` of person `name`."""
    return f"{name}/{name}_{number:04d}.jpg"


def build_face_folder(shared_data: Path, folder: Path) -> FaceFolder:
    """Write the images and both pair lists under `folder` and return them with the pairs."""
    lfw_images = read_small_lfw_images(shared_data / "small_lfw.bin")
    other_images = read_small_dataset_images(shared_data)
    root = folder / "images"
    for person in range(10):
        _write(root / lfw_path(lfw_name(person), 1), lfw_images[2 * person])
        _write(root / lfw_path(lfw_name(person), 2), lfw_images[2 * person + 1])
        _write(root / lfw_path(other_name(person), 1), other_images[person])
    png = _reencode_as_png(other_images[0])
    _write(root / "png" / "other_00.png", png)

    lines, lfw_expected = ["2\t5"], []
    for first in (0, 5):
        for person in range(first, first + 5):
            lines.append(f"{lfw_name(person)}\t1\t2")
            lfw_expected.append((lfw_images[2 * person], lfw_images[2 * person + 1], True))
        for person in range(first, first + 5):
            lines.append(f"{lfw_name(person)}\t2\t{other_name(person)}\t1")
            lfw_expected.append((lfw_images[2 * person + 1], other_images[person], False))
    lfw_pairs = folder / "pairs.txt"
    lfw_pairs.write_text("\n".join(lines) + "\n")

    rows, csv_expected = ["path1,path2,label"], []
    for person in range(9):
        path1, path2 = lfw_path(lfw_name(person), 1), lfw_path(lfw_name(person), 2)
        rows.append(f"{path1},{path2},{'1' if person % 2 else 'true'}")
        csv_expected.append((lfw_images[2 * person], lfw_images[2 * person + 1], True))
        path1, path2 = lfw_path(other_name(person), 1), lfw_path(other_name(person + 1), 1)
        rows.append(f"{path1}, {path2}, {'0' if person % 2 else 'false'}")
        csv_expected.append((other_images[person], other_images[person + 1], False))
    rows.append(f"png/other_00.png,{lfw_path(other_name(0), 1)},same")
    csv_expected.append((png, other_images[0], True))
    rows.append(f"png/other_00.png,{lfw_path(lfw_name(9), 1)},diff")
    csv_expected.append((png, lfw_images[18], False))
    csv_pairs = folder / "pairs.csv"
    csv_pairs.write_text("\n".join(rows) + "\n")
    return FaceFolder(root, lfw_pairs, lfw_expected, csv_pairs, csv_expected)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _reencode_as_png(jpeg: bytes) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as image:
        out = io.BytesIO()
        image.save(out, format="PNG")
    return out.getvalue()
