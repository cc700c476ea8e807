"""Tests for finding datasets from command-line paths."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from binconv.errors import ManifestError, StorageError
from binconv.storage_options import StorageOptions, configure_storage, get_storage_options
from evaluator.sources import find_datasets

from .shardbuilder import make_pairs, write_pairs


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    for name in ("lfw", "agedb_30"):
        write_pairs(root, name, make_pairs(3), pairs_per_shard=2)
    (root / "notes").mkdir()
    return root


def test_root_lists_datasets_sorted(root: Path) -> None:
    assert find_datasets(str(root)) == [
        str(root / "agedb_30" / "agedb_30.json"),
        str(root / "lfw" / "lfw.json"),
    ]


def test_dataset_folder_is_one_dataset(root: Path) -> None:
    assert find_datasets(str(root / "lfw") + "/") == [str(root / "lfw" / "lfw.json")]


def test_manifest_taken_as_is(root: Path) -> None:
    assert find_datasets(str(root / "lfw" / "lfw.json")) == [str(root / "lfw" / "lfw.json")]


def test_folder_without_datasets_rejected(root: Path) -> None:
    with pytest.raises(ManifestError, match="no converted datasets found"):
        find_datasets(str(root / "notes"))


def test_missing_path_rejected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        find_datasets(str(tmp_path / "absent"))


def test_shard_file_instead_of_dataset_rejected(root: Path) -> None:
    shard = next((root / "lfw").glob("*.tar"))

    with pytest.raises(ManifestError, match="no converted datasets found"):
        find_datasets(str(shard))


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound once, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_http_server_is_storage_error(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/sets"
    previous = get_storage_options()
    configure_storage(StorageOptions(max_retries=0, timeout_s=2.0))
    try:
        with pytest.raises(StorageError, match=rf"listing {url} failed after 1 attempts"):
            find_datasets(url)
    finally:
        configure_storage(previous)
