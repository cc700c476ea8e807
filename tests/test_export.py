"""Tests for exporting converted datasets to legacy .bin files."""

from __future__ import annotations

import io
import pickle
import pickletools
import random
from pathlib import Path

import fsspec
import pytest

from binconv.errors import BinconvError, DatasetError, ManifestError
from binconv.export import export_dataset
from binconv.legacy_pickle import LegacyBinWriter
from binconv.pairs_build import build_pairs_dataset

from .face_folders import FaceFolder, build_face_folder
from .progress_recorder import RecordingProgress

ExpectedPair = tuple[bytes, bytes, bool]


@pytest.fixture
def faces(shared_data: Path, tmp_path: Path) -> FaceFolder:
    return build_face_folder(shared_data, tmp_path / "input")


@pytest.fixture
def csv_dataset(faces: FaceFolder, tmp_path: Path) -> Path:
    build_pairs_dataset(
        faces.csv_pairs, faces.root, str(tmp_path / "shards"), "faces", pairs_per_shard=7
    )
    return tmp_path / "shards" / "faces"


def legacy_form(pairs: list[ExpectedPair]) -> tuple[list[bytes], list[bool]]:
    images = [image for img1, img2, _ in pairs for image in (img1, img2)]
    return images, [issame for _, _, issame in pairs]


def test_export_loads_with_plain_pickle(
    faces: FaceFolder, csv_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "faces.bin"
    result = export_dataset(str(csv_dataset), str(out))

    with out.open("rb") as f:
        images, issame = pickle.load(f)

    expected_images, expected_issame = legacy_form(faces.csv_expected)
    assert images == expected_images
    assert issame == expected_issame
    assert all(type(image) is bytes for image in images)
    assert all(type(label) is bool for label in issame)
    assert result.num_pairs == 20
    assert result.num_positive == 10
    assert result.size == out.stat().st_size


def test_export_loads_with_bytes_encoding(
    faces: FaceFolder, csv_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "faces.bin"
    export_dataset(str(csv_dataset / "faces.json"), str(out))

    with out.open("rb") as f:
        loaded = pickle.load(f, encoding="bytes")

    assert type(loaded) is tuple
    assert loaded == legacy_form(faces.csv_expected)


def test_export_is_protocol_3_pickle(csv_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.bin"
    export_dataset(str(csv_dataset), str(out))
    data = out.read_bytes()

    opcodes = [opcode.name for opcode, _, _ in pickletools.genops(data)]

    assert data[:2] == b"\x80\x03"
    assert opcodes[-2:] == ["TUPLE2", "STOP"]
    assert opcodes.count("BINBYTES") == 40
    assert "FRAME" not in opcodes
    pickletools.dis(data, out=io.StringIO())  # raises on a malformed stream


def test_writer_round_trips_many_pairs() -> None:
    rng = random.Random(7)
    # Small and large images (SHORT_BINBYTES and BINBYTES), and more labels
    # than one MARK ... APPENDS batch holds.
    images = [rng.randbytes(rng.choice([0, 1, 255, 256, 70_000])) for _ in range(5002)]
    issame = [rng.random() < 0.5 for _ in range(2501)]
    out = io.BytesIO()

    writer = LegacyBinWriter(out)
    for index, label in enumerate(issame):
        writer.add_pair(images[2 * index], images[2 * index + 1], label)
    writer.finish()

    assert pickle.loads(out.getvalue()) == (images, issame)
    assert writer.size == len(out.getvalue())
    assert writer.num_pairs == 2501
    assert writer.num_positive == sum(issame)


def test_writer_with_no_pairs_gives_empty_lists() -> None:
    out = io.BytesIO()
    writer = LegacyBinWriter(out)
    writer.finish()
    assert pickle.loads(out.getvalue()) == ([], [])


def test_export_keeps_existing_file(csv_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.bin"
    out.write_bytes(b"keep me")

    with pytest.raises(BinconvError, match="already exists; pass --overwrite"):
        export_dataset(str(csv_dataset), str(out))

    assert out.read_bytes() == b"keep me"


def test_export_overwrite_replaces_file(
    faces: FaceFolder, csv_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "faces.bin"
    out.write_bytes(b"old")

    export_dataset(str(csv_dataset), str(out), overwrite=True)

    assert pickle.loads(out.read_bytes()) == legacy_form(faces.csv_expected)


def test_export_creates_parent_folder(csv_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "faces.bin"
    export_dataset(str(csv_dataset), str(out))
    assert out.is_file()


def test_export_to_folder_is_rejected(csv_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BinconvError, match=r"is a folder; give the path of the \.bin file"):
        export_dataset(str(csv_dataset), str(tmp_path), overwrite=True)


def test_missing_shard_leaves_no_file(csv_dataset: Path, tmp_path: Path) -> None:
    (csv_dataset / "faces-000002.tar").unlink()
    out = tmp_path / "faces.bin"

    with pytest.raises(DatasetError, match=r"faces-000002\.tar not found"):
        export_dataset(str(csv_dataset), str(out))

    assert sorted(path.name for path in tmp_path.iterdir()) == ["input", "shards"]


def test_export_of_missing_dataset_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no dataset manifest found"):
        export_dataset(str(tmp_path / "nothing"), str(tmp_path / "x.bin"))
    assert not (tmp_path / "x.bin").exists()


def test_build_and_export_by_fsspec_url(faces: FaceFolder, tmp_path: Path) -> None:
    # fsspec's in-memory filesystem is process-wide, so each test uses its own folder.
    root = f"memory://{tmp_path.name}"
    memory = fsspec.filesystem("memory")
    try:
        build_pairs_dataset(
            faces.lfw_pairs, faces.root, f"{root}/shards", "mylfw", pairs_per_shard=6
        )
        result = export_dataset(f"{root}/shards/mylfw", f"{root}/bins/mylfw.bin")
        with fsspec.open(f"{root}/bins/mylfw.bin", "rb") as f:
            loaded = pickle.load(f)
        listing = memory.ls(f"{root}/shards/mylfw", detail=False)
        shard_names = sorted(path.rsplit("/", 1)[-1] for path in listing)
        size = memory.size(f"{root}/bins/mylfw.bin")
    finally:
        memory.rm(root, recursive=True)

    assert loaded == legacy_form(faces.lfw_expected)
    assert result.num_pairs == 20
    assert result.size == size
    assert shard_names == [f"mylfw-00000{index}.tar" for index in range(4)] + ["mylfw.json"]


def test_export_reports_progress(csv_dataset: Path, tmp_path: Path) -> None:
    progress = RecordingProgress()

    export_dataset(str(csv_dataset), str(tmp_path / "faces.bin"), progress=progress)

    assert progress.started == [("faces: exporting pairs", 20)]
    assert progress.finished == [("faces: exporting pairs", 20)]
