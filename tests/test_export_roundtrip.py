"""Round trips: .bin to shards to .bin to shards, and image folder to shards to .bin to shards."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from binconv.binfile import read_bin_index
from binconv.cli import app
from binconv.convert import convert_bins
from binconv.dataset_reader import locate_dataset
from binconv.export import export_dataset
from binconv.manifest import Manifest
from binconv.pairs_build import build_pairs_dataset
from binconv.verify import verify_conversion

from .face_folders import FaceFolder, build_face_folder, read_small_lfw_images


@pytest.fixture
def faces(shared_data: Path, tmp_path: Path) -> FaceFolder:
    return build_face_folder(shared_data, tmp_path / "input")


def shard_digests(manifest: Manifest) -> list[tuple[str, int, str]]:
    return [(shard.url, shard.size, shard.sha256) for shard in manifest.shards]


def convert_one(bin_path: Path, out: Path, pairs_per_shard: int = 500) -> Manifest:
    (result,) = convert_bins([bin_path], str(out), pairs_per_shard)
    return result.manifest


def test_small_lfw_bin_round_trip(small_lfw_bin: Path, tmp_path: Path) -> None:
    first = convert_one(small_lfw_bin, tmp_path / "first")
    exported = tmp_path / "again" / "small_lfw.bin"

    export_dataset(str(tmp_path / "first" / "small_lfw"), str(exported))
    second = convert_one(exported, tmp_path / "second")

    assert shard_digests(second) == shard_digests(first)
    assert second.num_pairs == 10
    assert second.source.sha256 != first.source.sha256  # NumPy arrays became bytes
    images, issame = pickle.loads(exported.read_bytes())
    assert images == read_small_lfw_images(small_lfw_bin)
    assert issame == [True] * 10


def test_exported_bin_reads_as_protocol_3_bytes(small_lfw_bin: Path, tmp_path: Path) -> None:
    convert_one(small_lfw_bin, tmp_path / "first")
    exported = tmp_path / "small_lfw.bin"
    export_dataset(str(tmp_path / "first" / "small_lfw"), str(exported))

    index = read_bin_index(exported)

    assert index.pickle_protocol == 3
    assert index.image_container == "bytes"
    assert index.num_pairs == 10


def test_export_is_deterministic(small_lfw_bin: Path, tmp_path: Path) -> None:
    convert_one(small_lfw_bin, tmp_path / "first")
    export_dataset(str(tmp_path / "first" / "small_lfw"), str(tmp_path / "one.bin"))
    convert_one(tmp_path / "one.bin", tmp_path / "second")

    export_dataset(str(tmp_path / "second" / "one"), str(tmp_path / "two.bin"))

    assert (tmp_path / "two.bin").read_bytes() == (tmp_path / "one.bin").read_bytes()


@pytest.mark.parametrize("pairs_per_shard", [500, 7])
def test_image_folder_round_trip(faces: FaceFolder, tmp_path: Path, pairs_per_shard: int) -> None:
    built = build_pairs_dataset(
        faces.csv_pairs,
        faces.root,
        str(tmp_path / "built"),
        "faces",
        pairs_per_shard=pairs_per_shard,
    ).manifest
    exported = tmp_path / "faces.bin"

    export_dataset(str(tmp_path / "built" / "faces"), str(exported))
    converted = convert_one(exported, tmp_path / "converted", pairs_per_shard)

    assert shard_digests(converted) == shard_digests(built)
    assert converted.image_formats == {"jpg": 38, "png": 2}
    assert (converted.num_positive, converted.num_negative) == (10, 10)


def test_verify_accepts_exported_bin(faces: FaceFolder, tmp_path: Path) -> None:
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "built"), "mylfw")
    exported = tmp_path / "mylfw.bin"
    export_dataset(str(tmp_path / "built" / "mylfw"), str(exported))

    result = verify_conversion(exported, str(tmp_path / "built" / "mylfw"))

    assert result.num_pairs == 20
    assert result.num_shards == 1
    assert not result.same_source  # the dataset was built from pairs.txt, not from this file


def test_cli_round_trip_gives_identical_shards(faces: FaceFolder, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    lfw_args = [str(faces.lfw_pairs), "-i", str(faces.root), "-o", str(out), "-n", "mylfw"]
    steps = [
        ["pairs", *lfw_args, "--pairs-per-shard", "6", "-q"],
        ["export", str(out / "mylfw"), "-o", str(tmp_path / "mylfw.bin"), "-q"],
        [
            "convert",
            str(tmp_path / "mylfw.bin"),
            "-o",
            str(tmp_path / "again"),
            "--pairs-per-shard",
            "6",
            "-q",
        ],
        ["verify", str(tmp_path / "mylfw.bin"), str(out / "mylfw")],
    ]

    for step in steps:
        result = runner.invoke(app, step)
        assert result.exit_code == 0, (step, result.output)

    built = locate_dataset(str(out / "mylfw")).manifest
    again = locate_dataset(str(tmp_path / "again" / "mylfw")).manifest
    assert len(built.shards) == 4
    assert shard_digests(again) == shard_digests(built)
