"""Tests of the windowed file reader: every byte hashed once, whatever the reads."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from binconv.hashing_reader import HashingReader, StreamView


@pytest.fixture
def data_file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    data = random.Random(3).randbytes(50_000)
    path = tmp_path / "data"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def test_reader_hashes_file_once_across_jumps(data_file: tuple[int, bytes]) -> None:
    fd, data = data_file
    reader = HashingReader(fd, len(data), chunk_size=1000)
    rng = random.Random(5)
    offset = 0
    while offset < len(data):
        window = reader.load(offset, rng.choice([0, 10, 2500]))
        assert window == data[offset : offset + len(window)]
        assert len(window) >= min(1000, len(data) - offset)
        # Sometimes go back within what was read, sometimes jump ahead past unread bytes.
        offset += rng.choice([-300, 1, 700, 4000, 12000])
        offset = max(offset, 0)

    trailing, sha256 = reader.finish(40_000)

    assert trailing == 10_000
    assert sha256 == hashlib.sha256(data).hexdigest()


def test_reader_read_at_uses_window_or_loads(data_file: tuple[int, bytes]) -> None:
    fd, data = data_file
    reader = HashingReader(fd, len(data), hashing=False, chunk_size=1000)
    reader.load(0)

    assert reader.read_at(100, 50) == data[100:150]
    assert reader.start == 0
    assert reader.read_at(30_000, 5000) == data[30_000:35_000]
    assert reader.start == 30_000
    assert reader.read_at(49_990, 100) == data[49_990:]
    with pytest.raises(ValueError, match="hashing=True"):
        reader.finish(0)


def test_stream_view_stops_at_end_of_file(data_file: tuple[int, bytes]) -> None:
    fd, data = data_file
    view = StreamView(HashingReader(fd, len(data), hashing=False), 49_000)

    assert view.read(2000) == b""  # more than is left: nothing, like a truncated pickle
    assert view.tell() == 49_000
    assert view.read(10) == data[49_000:49_010]
    assert view.tell() == 49_010


def test_stream_view_readline(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"numpy\nndarray\n" + b"x" * 5000)
    fd = os.open(path, os.O_RDONLY)
    try:
        view = StreamView(HashingReader(fd, path.stat().st_size, hashing=False), 0)
        assert view.readline() == b"numpy\n"
        assert view.readline() == b"ndarray\n"
        # No newline within 4096 bytes: the line is cut there, without a newline.
        assert view.readline() == b"x" * 4096
    finally:
        os.close(fd)
