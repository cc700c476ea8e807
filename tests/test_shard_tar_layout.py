"""Tests that the shard writer's own USTAR encoding matches what tarfile writes and reads."""

from __future__ import annotations

import io
import tarfile

import pytest

from binconv.errors import BinconvError
from binconv.shardwriter import member_bytes, tar_end

MEMBERS = [
    ("000000.img1.jpg", b""),
    ("000000.img2.png", b"x"),
    ("000000.issame.cls", b"1"),
    ("000001.img1.webp", bytes(range(256)) * 2),
    ("000001.img2.tiff", b"\xff" * 513),
    ("999999.img1.jpg", b"\x00" * 10_000),
]


def tarfile_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """Write `members` with tarfile, using the same fixed header fields as the shard writer."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o444
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def own_bytes(members: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(member_bytes(name, data) for name, data in members)
    return body + tar_end(len(body))


def test_layout_equals_tarfile_output() -> None:
    assert own_bytes(MEMBERS) == tarfile_bytes(MEMBERS)


@pytest.mark.parametrize("count", [0, 1, 17])
def test_archive_padded_to_records(count: int) -> None:
    data = own_bytes(MEMBERS[:1] * count)

    assert len(data) % (20 * 512) == 0
    assert data == tarfile_bytes(MEMBERS[:1] * count)


def test_tarfile_reads_members_back() -> None:
    with tarfile.open(fileobj=io.BytesIO(own_bytes(MEMBERS))) as tar:
        read = [(m.name, tar.extractfile(m).read(), m.mode, m.mtime) for m in tar]  # type: ignore[union-attr]

    assert read == [(name, data, 0o444, 0) for name, data in MEMBERS]


def test_member_name_too_long() -> None:
    with pytest.raises(BinconvError, match="does not fit a USTAR header"):
        member_bytes("x" * 101, b"")
