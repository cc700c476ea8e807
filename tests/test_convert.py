"""Tests of converting `.bin` files into datasets: shard layout, manifest, reruns, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import binconv.convert
from binconv.binfile import BinIndex, iter_bin_pairs
from binconv.convert import convert_bins, find_sources
from binconv.errors import BinconvError, BinFileError
from binconv.shardwriter import Pair
from binconv.verify import verify_conversion
from tests.binbuilder import alternating_issame, face_jpegs, face_png, write_bin

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seven_pair_images() -> list[bytes]:
    return face_jpegs(14, seed=3)


@pytest.fixture
def seven_pair_bin(tmp_path: Path, seven_pair_images: list[bytes]) -> Path:
    return write_bin(tmp_path / "src" / "seven.bin", seven_pair_images, alternating_issame(7))


@pytest.fixture(autouse=True)
def _source_folder(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()


def mtimes(folder: Path) -> dict[str, int]:
    """Return the modification time of every file in `folder`, by name."""
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.iterdir())}


def test_convert_writes_shards_and_manifest(tmp_path: Path, seven_pair_bin: Path) -> None:
    [result] = convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)

    dataset = tmp_path / "out" / "seven"
    assert sorted(p.name for p in dataset.iterdir()) == [
        "seven-000000.tar",
        "seven-000001.tar",
        "seven-000002.tar",
        "seven.json",
    ]
    assert result.skipped is False
    assert result.dataset_dir == str(dataset)
    manifest = json.loads((dataset / "seven.json").read_text())
    assert manifest["__kind__"] == "wids-shard-index-v1"
    assert manifest["name"] == "seven"
    assert manifest["num_pairs"] == 7
    assert manifest["num_positive"] == 4
    assert manifest["num_negative"] == 3
    assert manifest["pairs_per_shard"] == 3
    assert manifest["format_version"] == 1
    assert [s["nsamples"] for s in manifest["shardlist"]] == [3, 3, 1]
    assert [s["first_pair"] for s in manifest["shardlist"]] == [0, 3, 6]


def test_manifest_checksums_match_files(tmp_path: Path, seven_pair_bin: Path) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)

    dataset = tmp_path / "out" / "seven"
    manifest = json.loads((dataset / "seven.json").read_text())
    for shard in manifest["shardlist"]:
        data = (dataset / shard["url"]).read_bytes()
        assert shard["size"] == len(data)
        assert shard["sha256"] == hashlib.sha256(data).hexdigest()
    source = manifest["source"]
    assert source["name"] == "seven.bin"
    assert source["size"] == seven_pair_bin.stat().st_size
    assert source["sha256"] == hashlib.sha256(seven_pair_bin.read_bytes()).hexdigest()
    assert source["pickle_protocol"] == 4
    assert source["image_container"] == "bytes"


def test_shard_members_hold_original_bytes(
    tmp_path: Path, seven_pair_bin: Path, seven_pair_images: list[bytes]
) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)

    with tarfile.open(tmp_path / "out" / "seven" / "seven-000001.tar") as tar:
        members = tar.getmembers()
        names = [member.name for member in members]
        contents = [tar.extractfile(member).read() for member in members]  # type: ignore[union-attr]

    assert names == [
        "000003.img1.jpg",
        "000003.img2.jpg",
        "000003.issame.cls",
        "000004.img1.jpg",
        "000004.img2.jpg",
        "000004.issame.cls",
        "000005.img1.jpg",
        "000005.img2.jpg",
        "000005.issame.cls",
    ]
    assert contents[0] == seven_pair_images[6]
    assert contents[1] == seven_pair_images[7]
    assert contents[2] == b"0"
    assert contents[5] == b"1"
    assert all(member.mtime == 0 for member in members)
    assert all(member.uid == 0 and member.uname == "" for member in members)


def test_extension_from_magic_bytes(tmp_path: Path) -> None:
    images = [face_png(1), face_jpegs(1)[0]]
    source = write_bin(tmp_path / "src" / "mixed.bin", images, [True], images_as="numpy-n1")

    convert_bins([source], str(tmp_path / "out"))

    with tarfile.open(tmp_path / "out" / "mixed" / "mixed-000000.tar") as tar:
        assert tar.getnames() == ["000000.img1.png", "000000.img2.jpg", "000000.issame.cls"]


def test_conversion_is_byte_reproducible(tmp_path: Path, seven_pair_bin: Path) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "a"), pairs_per_shard=3)
    convert_bins([seven_pair_bin], str(tmp_path / "b"), pairs_per_shard=3)

    for name in ("seven-000000.tar", "seven-000001.tar", "seven-000002.tar", "seven.json"):
        first = (tmp_path / "a" / "seven" / name).read_bytes()
        second = (tmp_path / "b" / "seven" / name).read_bytes()
        assert first == second, name


def test_real_small_lfw_converts_losslessly(tmp_path: Path, small_lfw_bin: Path) -> None:
    [result] = convert_bins([small_lfw_bin], str(tmp_path / "out"))

    verified = verify_conversion(small_lfw_bin, result.dataset_dir)

    assert result.manifest.num_pairs == 10
    assert result.manifest.num_positive == 10
    assert result.manifest.source.image_container == "numpy"
    assert result.manifest.source.pickle_protocol == 3
    assert verified.num_pairs == 10
    assert verified.same_source is True


def test_wids_reads_manifest(tmp_path: Path, seven_pair_bin: Path, seven_pair_images) -> None:
    import wids

    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)
    dataset = wids.ShardListDataset(
        str(tmp_path / "out" / "seven" / "seven.json"),
        cache_dir=str(tmp_path / "wids-cache"),
        transformations=[],
    )

    assert len(dataset) == 7
    sample = dataset[4]
    assert sample["__key__"] == "000004"
    assert sample[".img1.jpg"].read() == seven_pair_images[8]
    assert sample[".issame.cls"].read() == b"1"


def test_folder_source_converts_each_bin(tmp_path: Path, seven_pair_images) -> None:
    folder = tmp_path / "src"
    write_bin(folder / "lfw.bin", seven_pair_images[:4], [True, False])
    write_bin(folder / "cfp_fp.bin", seven_pair_images[4:8], [False, True], protocol=2)
    (folder / "train.rec").write_bytes(b"not a .bin file")
    (folder / "notes.txt").write_text("ignored")

    results = convert_bins([folder], str(tmp_path / "out"))

    assert [result.name for result in results] == ["cfp_fp", "lfw"]
    assert (tmp_path / "out" / "lfw" / "lfw.json").is_file()
    assert (tmp_path / "out" / "cfp_fp" / "cfp_fp.json").is_file()


def test_find_sources_rejects_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(BinFileError, match=r"folder contains no \.bin files"):
        find_sources([tmp_path / "src"])


def test_find_sources_rejects_duplicate_names(tmp_path: Path, seven_pair_images) -> None:
    first = write_bin(tmp_path / "src" / "lfw.bin", seven_pair_images[:2], [True])
    (tmp_path / "other").mkdir()
    second = write_bin(tmp_path / "other" / "lfw.bin", seven_pair_images[:2], [True])

    with pytest.raises(BinconvError, match="would both become dataset 'lfw'"):
        find_sources([first, second])


def test_find_sources_merges_same_file(tmp_path: Path, seven_pair_bin: Path) -> None:
    assert find_sources([seven_pair_bin, tmp_path / "src", seven_pair_bin]) == [seven_pair_bin]


def test_rerun_is_noop(tmp_path: Path, seven_pair_bin: Path) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)
    before = mtimes(tmp_path / "out" / "seven")

    [result] = convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)

    assert result.skipped is True
    assert result.manifest.num_pairs == 7
    assert mtimes(tmp_path / "out" / "seven") == before


def test_rerun_does_not_parse_source(tmp_path: Path, seven_pair_bin: Path, monkeypatch) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"))

    def fail(path: Path) -> BinIndex:
        raise AssertionError("an up-to-date source must only be hashed")

    monkeypatch.setattr(binconv.convert, "read_bin_index", fail)
    [result] = convert_bins([seven_pair_bin], str(tmp_path / "out"))

    assert result.skipped is True


def test_overwrite_rebuilds(tmp_path: Path, seven_pair_bin: Path) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)
    dataset = tmp_path / "out" / "seven"
    for path in dataset.iterdir():
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))

    [result] = convert_bins(
        [seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3, overwrite=True
    )

    assert result.skipped is False
    assert all(mtime > 1_000_000_000 for mtime in mtimes(dataset).values())
    assert verify_conversion(seven_pair_bin, str(dataset)).num_pairs == 7


def test_overwrite_with_fewer_shards_removes_stale(tmp_path: Path, seven_pair_bin: Path) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=2)
    assert len(list((tmp_path / "out" / "seven").glob("*.tar"))) == 4

    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=5, overwrite=True)

    assert sorted(p.name for p in (tmp_path / "out" / "seven").iterdir()) == [
        "seven-000000.tar",
        "seven-000001.tar",
        "seven.json",
    ]


def test_changed_source_needs_overwrite(
    tmp_path: Path, seven_pair_bin: Path, seven_pair_images
) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"))
    before = mtimes(tmp_path / "out" / "seven")
    write_bin(seven_pair_bin, seven_pair_images, [True] * 7)

    with pytest.raises(BinconvError, match=r"was converted from another seven\.bin.*--overwrite"):
        convert_bins([seven_pair_bin], str(tmp_path / "out"))
    assert mtimes(tmp_path / "out" / "seven") == before


def test_other_shard_size_needs_overwrite(tmp_path: Path, seven_pair_bin: Path) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)

    with pytest.raises(BinconvError, match="has 3 pairs per shard, but 4 were requested"):
        convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=4)


def test_missing_shard_needs_overwrite(tmp_path: Path, seven_pair_bin: Path) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)
    (tmp_path / "out" / "seven" / "seven-000001.tar").unlink()

    with pytest.raises(BinconvError, match="has missing or changed shards"):
        convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=3)


def test_invalid_source_writes_no_dataset(
    tmp_path: Path, seven_pair_bin: Path, seven_pair_images
) -> None:
    # The bad file sorts after the good one, so it is found only after the good one was read.
    bad = write_bin(tmp_path / "src" / "zz_bad.bin", seven_pair_images[:3], [True])

    with pytest.raises(BinFileError, match=r"zz_bad\.bin: the file has an odd number"):
        convert_bins([tmp_path / "src"], str(tmp_path / "out"))
    assert bad.exists()
    assert not (tmp_path / "out" / "seven").exists()


def test_empty_source_writes_no_dataset(tmp_path: Path, seven_pair_bin: Path) -> None:
    # The empty file sorts after the good one, so the good one was already read.
    empty = write_bin(tmp_path / "src" / "zz_empty.bin", [], [])

    with pytest.raises(BinFileError, match=r"zz_empty\.bin: the file contains no images"):
        convert_bins([seven_pair_bin, empty], str(tmp_path / "out"))
    assert not (tmp_path / "out" / "seven").exists()
    assert not (tmp_path / "out" / "zz_empty").exists()


def failing_pairs(fail_after: int) -> object:
    """Return a replacement for iter_bin_pairs that raises after `fail_after` pairs."""

    def iter_some_pairs(index: BinIndex) -> Iterator[Pair]:
        for pair in iter_bin_pairs(index):
            if pair.index == fail_after:
                raise BinFileError(f"{index.path}: simulated read error at pair {pair.index}")
            yield pair

    return iter_some_pairs


def test_failure_midway_leaves_no_dataset(
    tmp_path: Path, seven_pair_bin: Path, monkeypatch
) -> None:
    monkeypatch.setattr(binconv.convert, "iter_bin_pairs", failing_pairs(5))

    with pytest.raises(BinFileError, match="simulated read error at pair 5"):
        convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=2)

    assert list((tmp_path / "out" / "seven").iterdir()) == []


def test_failed_overwrite_then_rerun_rebuilds(
    tmp_path: Path, seven_pair_bin: Path, monkeypatch
) -> None:
    convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=2)
    with monkeypatch.context() as patch:
        patch.setattr(binconv.convert, "iter_bin_pairs", failing_pairs(3))
        with pytest.raises(BinFileError):
            convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=2, overwrite=True)
    # The old manifest went first, so no reader can pair it with half-new shards.
    assert not (tmp_path / "out" / "seven" / "seven.json").exists()

    [result] = convert_bins([seven_pair_bin], str(tmp_path / "out"), pairs_per_shard=2)

    assert result.skipped is False
    assert verify_conversion(seven_pair_bin, result.dataset_dir).num_shards == 4


def test_killed_run_then_rerun_rebuilds(tmp_path: Path, seven_pair_bin: Path) -> None:
    # A real crash: the process kills itself while writing its second shard.
    script = textwrap.dedent(
        """
        import os, signal, sys
        import binconv.shardwriter as shardwriter

        original = shardwriter.member_bytes
        def member_bytes_then_die(name, data):
            if name.startswith("000002."):
                os.kill(os.getpid(), signal.SIGKILL)
            return original(name, data)

        shardwriter.member_bytes = member_bytes_then_die
        sys.argv = ["binconv", "convert", sys.argv[1], "-o", sys.argv[2], "--pairs-per-shard", "2"]
        from binconv.cli import main
        main()
        """
    )
    out = tmp_path / "out"
    killed = subprocess.run(
        [sys.executable, "-c", script, str(seven_pair_bin), str(out)], cwd=REPO_ROOT, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    left = sorted(p.name for p in (out / "seven").iterdir())
    assert "seven.json" not in left
    assert ".seven-000001.tar.partial" in left

    [result] = convert_bins([seven_pair_bin], str(out), pairs_per_shard=2)

    assert result.skipped is False
    assert sorted(p.name for p in (out / "seven").iterdir()) == [
        "seven-000000.tar",
        "seven-000001.tar",
        "seven-000002.tar",
        "seven-000003.tar",
        "seven.json",
    ]
    assert verify_conversion(seven_pair_bin, result.dataset_dir).num_pairs == 7
