"""Tests for writing datasets to S3 and reading them from S3 and HTTP, with faults."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
import pytest

from binconv.dataset_reader import iter_pairs, locate_dataset
from binconv.dataset_writer import write_dataset
from binconv.errors import ManifestError, ShardChecksumError, ShardError
from binconv.manifest import SourceInfo
from binconv.storage_options import StorageOptions, configure_storage, get_storage_options
from tests.face_datasets import face_images, iter_face_pairs, write_face_dataset
from tests.servers import HTTPFileServer, S3Server

NUM_PAIRS = 23
PAIRS_PER_SHARD = 5


@pytest.fixture
def s3_options(s3_server: S3Server):
    """Make the S3 server the default storage endpoint for the test, as the CLI would."""
    previous = get_storage_options()
    configure_storage(s3_server.options(block_size=16384))
    yield get_storage_options()
    configure_storage(previous)


@pytest.fixture
def local_dataset(tmp_path: Path, shared_data: Path) -> Path:
    """A 23-pair dataset in 5 shards on local disk."""
    write_face_dataset(str(tmp_path / "local"), "faces", shared_data, NUM_PAIRS, PAIRS_PER_SHARD)
    return tmp_path / "local" / "faces"


def http_options(**overrides: object) -> StorageOptions:
    settings: dict = {"retry_delay_s": 0.01, "max_retry_delay_s": 0.05, "block_size": 4096}
    settings.update(overrides)
    return StorageOptions(**settings)


def pairs_as_tuples(path: str, options: StorageOptions | None = None) -> list[tuple]:
    location = locate_dataset(path, options)
    return [(p.index, p.img1, p.img2, p.issame) for p in iter_pairs(location, options)]


def test_write_dataset_to_s3_matches_local(
    s3_options: StorageOptions, s3_bucket: str, local_dataset: Path, shared_data: Path
) -> None:
    manifest = write_face_dataset(
        f"{s3_bucket}/sets", "faces", shared_data, NUM_PAIRS, PAIRS_PER_SHARD
    )
    fs = fsspec.filesystem("s3", endpoint_url=s3_options.s3_endpoint_url)
    names = sorted(path.rsplit("/", 1)[1] for path in fs.ls(f"{s3_bucket}/sets/faces"))
    local_names = sorted(path.name for path in local_dataset.iterdir())
    assert names == local_names
    assert len(manifest.shards) == 5
    for name in names:
        remote = fs.cat_file(f"{s3_bucket}/sets/faces/{name}")
        assert remote == (local_dataset / name).read_bytes(), name


def test_write_dataset_to_s3_uploads_manifest_last(
    s3_server: S3Server, s3_options: StorageOptions, s3_bucket: str, shared_data: Path
) -> None:
    write_face_dataset(f"{s3_bucket}/sets", "faces", shared_data, NUM_PAIRS, PAIRS_PER_SHARD)
    # Each object appears when its multipart upload completes: a POST with an uploadId.
    completed = [
        request.path.rsplit("/", 1)[1]
        for request in s3_server.plan.requests
        if request.method == "POST" and "uploadId=" in request.query
    ]
    assert completed[-1] == "faces.json"
    assert sorted(completed[:-1]) == [f"faces-{i:06d}.tar" for i in range(5)]


def test_write_dataset_to_s3_failure_leaves_nothing(
    s3_options: StorageOptions, s3_bucket: str, shared_data: Path
) -> None:
    def failing_pairs():
        for pair in iter_face_pairs(face_images(shared_data), NUM_PAIRS):
            if pair.index == 17:
                raise RuntimeError("source file ended early")
            yield pair

    source = SourceInfo(name="faces.pairs", size=1, sha256="0" * 64, kind="pairs")
    with pytest.raises(RuntimeError, match="ended early"):
        write_dataset(f"{s3_bucket}/sets", "faces", failing_pairs(), source, PAIRS_PER_SHARD)
    fs = fsspec.filesystem("s3", endpoint_url=s3_options.s3_endpoint_url)
    fs.invalidate_cache()
    assert fs.find(s3_bucket) == []
    uploads = fs.call_s3("list_multipart_uploads", Bucket=s3_bucket.removeprefix("s3://"))
    assert uploads.get("Uploads", []) == []


def test_iter_pairs_from_s3_equals_local(
    s3_options: StorageOptions, s3_bucket: str, local_dataset: Path, shared_data: Path
) -> None:
    write_face_dataset(f"{s3_bucket}/sets", "faces", shared_data, NUM_PAIRS, PAIRS_PER_SHARD)
    expected = pairs_as_tuples(str(local_dataset))
    assert len(expected) == NUM_PAIRS
    assert pairs_as_tuples(f"{s3_bucket}/sets/faces") == expected
    assert pairs_as_tuples(f"{s3_bucket}/sets/faces/faces.json") == expected


def test_iter_pairs_from_http_equals_local(
    http_server: HTTPFileServer, local_dataset: Path
) -> None:
    shutil.copytree(local_dataset, http_server.root / "faces")
    expected = pairs_as_tuples(str(local_dataset))
    assert pairs_as_tuples(f"{http_server.url}/faces", http_options()) == expected


def test_iter_pairs_from_http_survives_faults(
    http_server: HTTPFileServer, local_dataset: Path
) -> None:
    shutil.copytree(local_dataset, http_server.root / "faces")
    http_server.plan.fail("faces.json", status=503, times=2)
    http_server.plan.fail("faces-000001.tar", status=500, times=3)
    http_server.plan.cut("faces-000003.tar", after_bytes=5000, times=2)
    expected = pairs_as_tuples(str(local_dataset))
    assert pairs_as_tuples(f"{http_server.url}/faces", http_options()) == expected


def test_iter_pairs_deleted_http_shard(http_server: HTTPFileServer, local_dataset: Path) -> None:
    shutil.copytree(local_dataset, http_server.root / "faces")
    (http_server.root / "faces" / "faces-000002.tar").unlink()
    url = f"{http_server.url}/faces/faces-000002.tar"
    pairs = iter_pairs(locate_dataset(f"{http_server.url}/faces", http_options()), http_options())
    with pytest.raises(ShardError, match=rf"^shard {url} not found$"):
        list(pairs)


# Byte 5 lies in the name field of the first tar header, byte 700 in the first image.
@pytest.mark.parametrize("offset", [5, 700], ids=["tar-header", "image-bytes"])
def test_iter_pairs_corrupt_http_shard(
    http_server: HTTPFileServer, local_dataset: Path, offset: int
) -> None:
    shutil.copytree(local_dataset, http_server.root / "faces")
    shard = http_server.root / "faces" / "faces-000004.tar"
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0x5A
    shard.write_bytes(bytes(data))
    url = f"{http_server.url}/faces/faces-000004.tar"
    pairs = iter_pairs(locate_dataset(f"{http_server.url}/faces", http_options()), http_options())
    expected = rf"^shard {url} has sha256 [0-9a-f]{{64}}, but the manifest records"
    with pytest.raises(ShardChecksumError, match=expected):
        list(pairs)


def test_locate_dataset_missing_http_manifest(http_server: HTTPFileServer) -> None:
    with pytest.raises(ManifestError, match="no dataset manifest found"):
        locate_dataset(f"{http_server.url}/faces", http_options())
