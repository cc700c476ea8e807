"""Tests for binconv.copy: local -> S3 -> local copies, resuming, overwriting and failures."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import fsspec
import pytest

from binconv.copy import copy_dataset, copy_datasets
from binconv.dataset_reader import locate_dataset, locate_datasets
from binconv.errors import ManifestError, ShardChecksumError, ShardError, StorageError
from binconv.storage_options import StorageOptions
from tests.face_datasets import write_face_dataset
from tests.servers import HTTPFileServer, S3Server

PAIRS_PER_SHARD = 4


@pytest.fixture
def local_root(tmp_path: Path, shared_data: Path) -> Path:
    """A root with two datasets: `faces` (11 pairs, 3 shards) and `more` (6 pairs, 2 shards)."""
    root = tmp_path / "sets"
    write_face_dataset(str(root), "faces", shared_data, 11, PAIRS_PER_SHARD)
    write_face_dataset(str(root), "more", shared_data, 6, PAIRS_PER_SHARD)
    return root


def tree_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def s3_digests(server: S3Server, url: str) -> dict[str, str]:
    fs = fsspec.filesystem("s3", endpoint_url=server.endpoint_url)
    fs.invalidate_cache()
    prefix = url.removeprefix("s3://").rstrip("/") + "/"
    return {
        path.removeprefix(prefix): hashlib.sha256(fs.cat_file(path)).hexdigest()
        for path in sorted(fs.find(url))
    }


def test_copy_local_to_s3_to_local_round_trip(
    s3_server: S3Server, s3_bucket: str, local_root: Path, tmp_path: Path
) -> None:
    options = s3_server.options()
    uploaded = copy_datasets(str(local_root), f"{s3_bucket}/published", options=options)
    assert [r.name for r in uploaded] == ["faces", "more"]
    assert [r.copied_shards for r in uploaded] == [3, 2]
    assert s3_digests(s3_server, f"{s3_bucket}/published") == tree_digests(local_root)

    downloaded = copy_datasets(f"{s3_bucket}/published", str(tmp_path / "back"), options=options)
    assert [r.copied_shards for r in downloaded] == [3, 2]
    assert tree_digests(tmp_path / "back") == tree_digests(local_root)


def test_copy_single_dataset_by_manifest(
    s3_server: S3Server, s3_bucket: str, local_root: Path
) -> None:
    results = copy_datasets(
        str(local_root / "faces" / "faces.json"), s3_bucket, options=s3_server.options()
    )
    assert len(results) == 1
    assert results[0].destination == f"{s3_bucket}/faces"
    assert set(s3_digests(s3_server, s3_bucket)) == {
        "faces/faces.json",
        "faces/faces-000000.tar",
        "faces/faces-000001.tar",
        "faces/faces-000002.tar",
    }


def test_copy_writes_manifest_last(s3_server: S3Server, s3_bucket: str, local_root: Path) -> None:
    copy_datasets(str(local_root / "faces"), s3_bucket, options=s3_server.options())
    completed = [
        r.path.rsplit("/", 1)[1]
        for r in s3_server.plan.requests
        if r.method == "POST" and "uploadId=" in r.query
    ]
    assert completed == [
        "faces-000000.tar",
        "faces-000001.tar",
        "faces-000002.tar",
        "faces.json",
    ]


def test_copy_again_is_up_to_date(s3_server: S3Server, s3_bucket: str, local_root: Path) -> None:
    options = s3_server.options()
    copy_datasets(str(local_root / "faces"), s3_bucket, options=options)
    s3_server.plan.reset()
    [result] = copy_datasets(str(local_root / "faces"), s3_bucket, options=options)
    assert result.copied_shards == 0
    assert result.present_shards == 3
    assert result.manifest_written is False
    writes = [r for r in s3_server.plan.requests if r.method in ("PUT", "POST", "DELETE")]
    assert writes == []


def test_copy_resumes_and_replaces_damaged_shard(
    s3_server: S3Server, s3_bucket: str, local_root: Path
) -> None:
    options = s3_server.options()
    copy_datasets(str(local_root / "faces"), s3_bucket, options=options)
    fs = fsspec.filesystem("s3", endpoint_url=s3_server.endpoint_url)
    # An interrupted copy: no manifest, one shard missing, one corrupt with the right size.
    fs.rm(f"{s3_bucket}/faces/faces.json")
    fs.rm(f"{s3_bucket}/faces/faces-000001.tar")
    damaged = bytearray(fs.cat_file(f"{s3_bucket}/faces/faces-000002.tar"))
    damaged[100] ^= 0xFF
    fs.pipe_file(f"{s3_bucket}/faces/faces-000002.tar", bytes(damaged))

    [result] = copy_datasets(str(local_root / "faces"), s3_bucket, options=options)
    assert result.copied_shards == 2
    assert result.present_shards == 1
    assert s3_digests(s3_server, f"{s3_bucket}/faces") == tree_digests(local_root / "faces")


def test_copy_rejects_different_dataset_without_overwrite(
    tmp_path: Path, shared_data: Path, local_root: Path
) -> None:
    destination = tmp_path / "dest"
    write_face_dataset(str(destination), "faces", shared_data, 9, 2)
    before = tree_digests(destination)
    with pytest.raises(StorageError, match="already contains a different dataset 'faces'"):
        copy_datasets(str(local_root / "faces"), str(destination))
    assert tree_digests(destination) == before


def test_copy_overwrite_replaces_dataset_and_stale_shards(
    tmp_path: Path, shared_data: Path, local_root: Path
) -> None:
    destination = tmp_path / "dest"
    write_face_dataset(str(destination), "faces", shared_data, 9, 2)
    assert len(list((destination / "faces").glob("*.tar"))) == 5
    [result] = copy_datasets(str(local_root / "faces"), str(destination), overwrite=True)
    assert result.copied_shards == 3
    assert tree_digests(destination / "faces") == tree_digests(local_root / "faces")


def test_copy_corrupt_source_publishes_nothing(
    s3_server: S3Server, s3_bucket: str, local_root: Path
) -> None:
    shard = local_root / "faces" / "faces-000001.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    source_shard = str(shard)
    expected = rf"shard {source_shard} has sha256 [0-9a-f]{{64}}, but the manifest records"
    with pytest.raises(ShardChecksumError, match=expected):
        copy_datasets(str(local_root / "faces"), s3_bucket, options=s3_server.options())
    assert set(s3_digests(s3_server, s3_bucket)) == {"faces/faces-000000.tar"}


def test_copy_from_http_with_faults(
    http_server: HTTPFileServer, local_root: Path, tmp_path: Path
) -> None:
    shutil.copytree(local_root, http_server.root / "sets")
    http_server.plan.fail("faces-000000.tar", status=503, times=2)
    http_server.plan.cut("more-000001.tar", after_bytes=3000)
    options = StorageOptions(retry_delay_s=0.01, max_retry_delay_s=0.02)
    results = copy_datasets(f"{http_server.url}/sets", str(tmp_path / "mirror"), options=options)
    assert [r.name for r in results] == ["faces", "more"]
    assert tree_digests(tmp_path / "mirror") == tree_digests(local_root)


def test_copy_from_http_deleted_shard(
    http_server: HTTPFileServer, local_root: Path, tmp_path: Path
) -> None:
    shutil.copytree(local_root / "faces", http_server.root / "faces")
    (http_server.root / "faces" / "faces-000002.tar").unlink()
    url = f"{http_server.url}/faces/faces-000002.tar"
    with pytest.raises(ShardError, match=rf"^shard {url} not found$"):
        copy_datasets(f"{http_server.url}/faces", str(tmp_path / "mirror"))
    assert not (tmp_path / "mirror" / "faces" / "faces.json").exists()


def test_copy_to_http_is_rejected(http_server: HTTPFileServer, local_root: Path) -> None:
    with pytest.raises(StorageError, match="HTTP locations are read-only"):
        copy_datasets(str(local_root / "faces"), f"{http_server.url}/sets")


def test_copy_onto_itself_is_rejected(local_root: Path) -> None:
    with pytest.raises(StorageError, match="source and destination are the same folder"):
        copy_dataset(locate_dataset(str(local_root / "faces")), str(local_root))


def test_locate_datasets_finds_root_and_single(local_root: Path) -> None:
    assert [loc.manifest.name for loc in locate_datasets(str(local_root))] == ["faces", "more"]
    assert [loc.manifest.name for loc in locate_datasets(str(local_root / "more"))] == ["more"]


def test_locate_datasets_over_http_index(http_server: HTTPFileServer, local_root: Path) -> None:
    shutil.copytree(local_root, http_server.root / "sets")
    (http_server.root / "sets" / "notes").mkdir()
    found = locate_datasets(f"{http_server.url}/sets")
    assert [loc.manifest.name for loc in found] == ["faces", "more"]
    assert found[0].manifest_url == f"{http_server.url}/sets/faces/faces.json"


def test_locate_datasets_empty_root(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no converted datasets found"):
        locate_datasets(str(tmp_path / "empty"))
    with pytest.raises(ManifestError, match="not found"):
        locate_datasets(str(tmp_path / "absent"))


def test_copy_invalid_destination_manifest_needs_overwrite(
    tmp_path: Path, local_root: Path
) -> None:
    (tmp_path / "dest" / "faces").mkdir(parents=True)
    (tmp_path / "dest" / "faces" / "faces.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(StorageError, match="different dataset"):
        copy_datasets(str(local_root / "faces"), str(tmp_path / "dest"))
    [result] = copy_datasets(str(local_root / "faces"), str(tmp_path / "dest"), overwrite=True)
    assert result.manifest_written
