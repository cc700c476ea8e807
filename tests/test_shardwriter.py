"""Tests of PairShardWriter's background syncs: failures leave no shard behind."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from binconv import storage
from binconv.dataset_writer import write_dataset
from binconv.manifest import SourceInfo
from binconv.shardwriter import Pair, PairShardWriter
from tests.binbuilder import face_jpegs


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    images = face_jpegs(4)
    return [Pair(i, images[i % 4], images[(i + 1) % 4], i % 3 == 0) for i in range(7)]


def test_writer_shards_complete_after_close(tmp_path: Path, pairs: list[Pair]) -> None:
    writer = PairShardWriter(str(tmp_path), "set", 2, "set.bin")
    for pair in pairs:
        writer.write(pair)

    shards = writer.close()

    assert [shard.url for shard in shards] == [f"set-00000{i}.tar" for i in range(4)]
    assert [shard.nsamples for shard in shards] == [2, 2, 2, 1]
    assert [shard.first_pair for shard in shards] == [0, 2, 4, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == [shard.url for shard in shards]
    for shard in shards:
        assert (tmp_path / shard.url).stat().st_size == shard.size
        with tarfile.open(tmp_path / shard.url) as tar:
            assert len(tar.getnames()) == 3 * shard.nsamples


def test_writer_abort_removes_shard_being_written(tmp_path: Path, pairs: list[Pair]) -> None:
    writer = PairShardWriter(str(tmp_path), "set", 2, "set.bin")
    for pair in pairs[:5]:
        writer.write(pair)
    assert ".set-000002.tar.partial" in os.listdir(tmp_path)

    writer.abort()

    assert [shard.url for shard in writer.shards] == ["set-000000.tar", "set-000001.tar"]
    assert sorted(os.listdir(tmp_path)) == ["set-000000.tar", "set-000001.tar"]


def test_sync_failure_leaves_no_dataset(tmp_path: Path, pairs: list[Pair], monkeypatch) -> None:
    real_fsync = os.fsync
    calls = []

    def fsync_fails_second_time(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync_fails_second_time)
    source = SourceInfo(name="set.bin", size=1, sha256="0" * 64)

    with pytest.raises(OSError, match="No space left"):
        write_dataset(str(tmp_path), "set", iter(pairs), source, pairs_per_shard=2)

    assert len(calls) >= 2
    assert os.listdir(tmp_path / "set") == []
