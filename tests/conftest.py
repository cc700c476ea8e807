"""Fixtures shared by all tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real S3 and HTTP servers on 127.0.0.1 (fixtures `s3_server`, `s3_bucket`, `http_server`).
pytest_plugins = ["tests.servers"]

# Real test data made by others lives beside the repository, never inside it.
SHARED_DATA = Path(
    os.environ.get("BINCONV_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real test data; tests that need it fail if it is missing."""
    if not (SHARED_DATA / "small_lfw.bin").is_file():
        pytest.fail(f"real test data not found in {SHARED_DATA}; set BINCONV_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_lfw_bin(shared_data: Path) -> Path:
    """The real `small_lfw.bin`: 10 positive pairs of 112x112 JPEGs stored as NumPy arrays."""
    return shared_data / "small_lfw.bin"
