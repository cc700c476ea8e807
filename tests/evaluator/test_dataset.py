"""Tests for the streaming pair dataset: content, splitting, and damaged shards."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from binconv.errors import DatasetError, ManifestError
from binconv.manifest import Manifest, manifest_from_json, manifest_to_json
from binconv.shardwriter import Pair
from evaluator.dataset import PairBatch, PairDataset, PairLoader

from .shardbuilder import make_pairs, write_pairs

NUM_PAIRS = 23
PAIRS_PER_SHARD = 5  # 5 shards, the last one with 3 pairs

# Some tests start more DataLoader workers than CI has cores, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    return make_pairs(NUM_PAIRS)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory, pairs: list[Pair]) -> Path:
    root = tmp_path_factory.mktemp("shards")
    write_pairs(root, "toy", pairs, PAIRS_PER_SHARD)
    return root / "toy"


@pytest.fixture
def damaged_dir(tmp_path: Path, dataset_dir: Path) -> Path:
    """A copy of the dataset that a test may damage."""
    return Path(shutil.copytree(dataset_dir, tmp_path / "toy"))


def read_all(source: str, num_workers: int = 0, **options: int) -> list[PairBatch]:
    dataset = PairDataset(source, batch_size=4, **options)
    return list(PairLoader(dataset, num_workers=num_workers))


def indices_of(batches: list[PairBatch]) -> list[int]:
    return [index for batch in batches for index in batch.indices.tolist()]


def pil_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


def test_batches_hold_decoded_pairs(dataset_dir: Path, pairs: list[Pair]) -> None:
    batches = read_all(str(dataset_dir))
    assert [len(batch.indices) for batch in batches] == [4, 4, 4, 4, 4, 3]
    for batch in batches:
        assert batch.images.dtype.is_floating_point is False
        assert tuple(batch.images.shape[1:]) == (2, 3, 112, 112)
        for row, index in enumerate(batch.indices.tolist()):
            assert np.array_equal(batch.img1[row].numpy(), pil_pixels(pairs[index].img1))
            assert np.array_equal(batch.img2[row].numpy(), pil_pixels(pairs[index].img2))
            assert bool(batch.issame[row]) is pairs[index].issame


def test_manifest_path_accepted(dataset_dir: Path) -> None:
    batches = read_all(str(dataset_dir / "toy.json"))
    assert indices_of(batches) == list(range(NUM_PAIRS))


@pytest.mark.parametrize("num_workers", [0, 1, 3])
def test_single_rank_reads_each_pair_once(dataset_dir: Path, num_workers: int) -> None:
    indices = indices_of(read_all(str(dataset_dir), num_workers=num_workers))
    assert sorted(indices) == list(range(NUM_PAIRS))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_three_ranks_together_read_each_pair_once(dataset_dir: Path, num_workers: int) -> None:
    per_rank = [
        indices_of(read_all(str(dataset_dir), num_workers, rank=rank, world_size=3))
        for rank in range(3)
    ]
    combined = Counter(index for indices in per_rank for index in indices)
    assert sorted(combined) == list(range(NUM_PAIRS))
    assert set(combined.values()) == {1}
    assert all(len(indices) < NUM_PAIRS for indices in per_rank)


def test_more_readers_than_shards(tmp_path: Path, pairs: list[Pair]) -> None:
    write_pairs(tmp_path, "two", pairs[:9], pairs_per_shard=5)
    per_rank = [
        indices_of(read_all(str(tmp_path / "two"), 2, rank=rank, world_size=2)) for rank in (0, 1)
    ]
    assert sorted(per_rank[0] + per_rank[1]) == list(range(9))
    assert per_rank[0] and per_rank[1]


def test_missing_manifest_rejected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no dataset manifest found"):
        PairDataset(str(tmp_path / "nothing"))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_missing_shard_names_shard(damaged_dir: Path, num_workers: int) -> None:
    (damaged_dir / "toy-000002.tar").unlink()
    with pytest.raises(DatasetError) as raised:
        read_all(str(damaged_dir), num_workers=num_workers)
    message = str(raised.value)
    assert "toy-000002.tar not found" in message
    assert "pairs 10..14" in message
    assert "\n" not in message


@pytest.mark.parametrize("cut", [0.5, 0.93])
def test_truncated_shard_names_shard(damaged_dir: Path, cut: float) -> None:
    shard = damaged_dir / "toy-000001.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DatasetError, match=r"toy-000001\.tar (is truncated|contains \d pairs)"):
        read_all(str(damaged_dir), num_workers=2)


def test_tar_padding_cut_off_detected(damaged_dir: Path) -> None:
    shard = damaged_dir / "toy-000003.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[:-512])
    with pytest.raises(DatasetError, match=r"toy-000003\.tar is truncated: it has 50688 bytes"):
        read_all(str(damaged_dir))


def test_shard_with_fewer_pairs_than_manifest(damaged_dir: Path, pairs: list[Pair]) -> None:
    # A shard of pairs 5..8 in place of 5..9: valid tar, keys in order, one pair short.
    rewrite_shard(damaged_dir / "toy-000001.tar", pairs[5:9])
    with pytest.raises(DatasetError) as raised:
        read_all(str(damaged_dir))
    # The shard is also shorter than the manifest lists, which the stream detects first.
    assert "toy-000001.tar is truncated" in str(raised.value)


def test_shard_with_wrong_key_names_pair(damaged_dir: Path, pairs: list[Pair]) -> None:
    rewrite_shard(damaged_dir / "toy-000001.tar", [pairs[5], pairs[7], pairs[6], *pairs[8:10]])
    with pytest.raises(
        DatasetError, match="expected pair 000006 at this position, found key '000007'"
    ):
        read_all(str(damaged_dir))


def test_shard_with_missing_member_names_pair(damaged_dir: Path, pairs: list[Pair]) -> None:
    members = shard_members(pairs[5:10])
    del members["000007.img2.jpg"]
    write_tar(damaged_dir / "toy-000001.tar", members)
    with pytest.raises(DatasetError, match="pair 000007 has members"):
        read_all(str(damaged_dir))


def test_changed_image_bytes_detected(damaged_dir: Path) -> None:
    shard = damaged_dir / "toy-000000.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0x01  # inside the first image's entropy-coded data
    shard.write_bytes(bytes(data))
    expected = r"toy-000000\.tar has sha256 [0-9a-f]{64}, but the manifest"
    with pytest.raises(DatasetError, match=expected):
        read_all(str(damaged_dir))


def test_changed_bytes_pass_without_sha256(damaged_dir: Path) -> None:
    shard = damaged_dir / "toy-000000.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0x01
    shard.write_bytes(bytes(data))
    dataset = PairDataset(str(damaged_dir), batch_size=4, check_sha256=False)
    indices = indices_of(list(PairLoader(dataset, num_workers=0)))
    assert indices == list(range(NUM_PAIRS))


def test_size_checked_without_sha256(damaged_dir: Path) -> None:
    shard = damaged_dir / "toy-000003.tar"
    shard.write_bytes(shard.read_bytes()[:-512])
    dataset = PairDataset(str(damaged_dir), batch_size=4, check_sha256=False)
    with pytest.raises(
        DatasetError, match=r"toy-000003\.tar is truncated: it has 50688 bytes, but should have"
    ):
        list(PairLoader(dataset, num_workers=0))


def test_undecodable_image_names_pair(damaged_dir: Path, pairs: list[Pair]) -> None:
    members = shard_members(pairs[:5])
    members["000003.img1.jpg"] = members["000003.img1.jpg"][:200]
    write_tar(damaged_dir / "toy-000000.tar", members)
    manifest_path = damaged_dir / "toy.json"
    manifest_path.write_text(updated_shard_entry(manifest_path, damaged_dir / "toy-000000.tar"))
    with pytest.raises(DatasetError, match="pair 000003 img1: cannot decode the image"):
        read_all(str(damaged_dir), num_workers=1)


def shard_members(pairs: list[Pair]) -> dict[str, bytes]:
    members = {}
    for pair in pairs:
        key = f"{pair.index:06d}"
        members[f"{key}.img1.jpg"] = pair.img1
        members[f"{key}.img2.jpg"] = pair.img2
        members[f"{key}.issame.cls"] = b"1" if pair.issame else b"0"
    return members


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def rewrite_shard(path: Path, pairs: list[Pair]) -> None:
    write_tar(path, shard_members(pairs))


def updated_shard_entry(manifest_path: Path, shard: Path) -> str:
    """Return the manifest text with the size and SHA-256 of `shard` updated."""
    manifest: Manifest = manifest_from_json(manifest_path.read_text(), str(manifest_path))
    data = shard.read_bytes()
    shards = tuple(
        dataclasses.replace(entry, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        if entry.url == shard.name
        else entry
        for entry in manifest.shards
    )
    return manifest_to_json(dataclasses.replace(manifest, shards=shards))
