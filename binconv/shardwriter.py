"""Writing pairs into reproducible WebDataset tar shards."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

from .errors import BinconvError
from .format import ISSAME_MEMBER, detect_image_type, pair_key, shard_name
from .manifest import ShardInfo
from .storage import join_url, open_atomic_write

__all__ = ["Pair", "PairShardWriter", "member_bytes", "pair_members", "tar_end"]


@dataclass(frozen=True)
class Pair:
    """One verification pair: two encoded images and whether they show the same person."""

    index: int
    img1: bytes
    img2: bytes
    issame: bool


class _HashingWriter(io.RawIOBase):
    """A write-only stream that forwards to `target` and tracks size and SHA-256."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:
        view = memoryview(data)
        self._target.write(view)
        self.sha256.update(view)
        self.size += view.nbytes
        return view.nbytes


def pair_members(pair: Pair, source: str) -> list[tuple[str, bytes]]:
    """Return the tar member names and contents of `pair`, in the order they are written.

    Raises:
        BinconvError: An image has no recognised image signature.
    """
    key = pair_key(pair.index)
    members = []
    for slot, data in (("img1", pair.img1), ("img2", pair.img2)):
        ext = detect_image_type(data)
        if ext is None:
            raise BinconvError(
                f"{source}: pair {pair.index}: {slot} is not an encoded image "
                f"(first bytes {bytes(data[:8]).hex()}, {len(data)} bytes)"
            )
        members.append((f"{key}.{slot}.{ext}", bytes(data)))
    members.append((f"{key}.{ISSAME_MEMBER}", b"1" if pair.issame else b"0"))
    return members


# A USTAR header block with every field but name, size and checksum fixed:
# mode 0444, uid and gid 0, mtime 0, empty user and group names, regular file.
# The header is built here instead of by tarfile, because tarfile's choice of
# fields (such as device numbers) has changed between Python versions, and
# equal pairs must give byte-identical shards on any machine.
_BLOCK_SIZE = 512
_RECORD_SIZE = 20 * _BLOCK_SIZE  # tar's default record size, as tarfile pads to
_HEADER_TEMPLATE = bytearray(_BLOCK_SIZE)
_HEADER_TEMPLATE[100:108] = b"0000444\x00"
_HEADER_TEMPLATE[108:116] = b"0000000\x00"
_HEADER_TEMPLATE[116:124] = b"0000000\x00"
_HEADER_TEMPLATE[136:148] = b"00000000000\x00"
_HEADER_TEMPLATE[156:157] = tarfile.REGTYPE
_HEADER_TEMPLATE[257:265] = tarfile.POSIX_MAGIC
_MAX_MEMBER_SIZE = 8**11 - 1  # the largest size that 11 octal digits hold
# The checksum is the byte sum of the header with its own field read as
# spaces. Name and size fields are zero in the template, so a header's
# checksum is this sum plus the bytes of its name and size fields.
_TEMPLATE_CHECKSUM = sum(_HEADER_TEMPLATE) + 8 * ord(" ")


def member_bytes(name: str, data: bytes) -> bytes:
    """Return the tar header, data and padding of one member, as USTAR lays them out."""
    encoded = name.encode("ascii")
    if len(encoded) > 100 or len(data) > _MAX_MEMBER_SIZE:
        raise BinconvError(f"tar member {name!r} of {len(data)} bytes does not fit a USTAR header")
    size_field = b"%011o\x00" % len(data)
    header = bytearray(_HEADER_TEMPLATE)
    header[: len(encoded)] = encoded
    header[124:136] = size_field
    checksum = _TEMPLATE_CHECKSUM + sum(encoded) + sum(size_field)
    header[148:156] = b"%06o\x00 " % checksum
    padding = -len(data) % _BLOCK_SIZE
    return b"".join((header, data, bytes(padding)))


def tar_end(size: int) -> bytes:
    """Return the end-of-archive blocks for a tar of `size` bytes so far, padded to a record."""
    end = 2 * _BLOCK_SIZE
    return bytes(end + (-(size + end) % _RECORD_SIZE))


class PairShardWriter:
    """Writes consecutive pairs into shards `NAME-000000.tar`, ... under `out_dir`.

    Each shard is written atomically (see `open_atomic_write`), so a shard
    file that exists is complete. Call `close` to finish the last shard and get
    the list of shards; the caller writes the manifest after that.

    Args:
        out_dir: Folder path or URL that receives the shards.
        dataset: Dataset name, the shard file prefix.
        pairs_per_shard: Number of pairs per shard; the last shard may hold fewer.
        source: Name of the input, used in error messages.
    """

    def __init__(self, out_dir: str, dataset: str, pairs_per_shard: int, source: str) -> None:
        if pairs_per_shard < 1:
            raise BinconvError(f"pairs per shard must be at least 1, got {pairs_per_shard}")
        self.out_dir = out_dir
        self.dataset = dataset
        self.pairs_per_shard = pairs_per_shard
        self.source = source
        self.shards: list[ShardInfo] = []
        self.image_formats: Counter[str] = Counter()
        self.num_pairs = 0
        self.num_positive = 0
        self._buffer: list[list[tuple[str, bytes]]] = []

    def write(self, pair: Pair) -> None:
        """Add the next pair; its index must follow the previous pair's."""
        if pair.index != self.num_pairs:
            raise BinconvError(
                f"{self.source}: pairs must be written in order: got pair {pair.index}, "
                f"expected {self.num_pairs}"
            )
        members = pair_members(pair, self.source)
        self.image_formats.update(name.rsplit(".", 1)[1] for name, _ in members[:2])
        self._buffer.append(members)
        self.num_pairs += 1
        self.num_positive += int(pair.issame)
        if len(self._buffer) == self.pairs_per_shard:
            self._flush()

    def close(self) -> tuple[ShardInfo, ...]:
        """Write the last, partial shard and return all shards in order."""
        if self._buffer:
            self._flush()
        return tuple(self.shards)

    def _flush(self) -> None:
        name = shard_name(self.dataset, len(self.shards))
        first_pair = self.num_pairs - len(self._buffer)
        with open_atomic_write(join_url(self.out_dir, name)) as out:
            hashing = _HashingWriter(out)
            for members in self._buffer:
                hashing.write(b"".join(member_bytes(*member) for member in members))
            hashing.write(tar_end(hashing.size))
        self.shards.append(
            ShardInfo(
                url=name,
                nsamples=len(self._buffer),
                first_pair=first_pair,
                size=hashing.size,
                sha256=hashing.sha256.hexdigest(),
            )
        )
        self._buffer = []
