"""Writing pairs into reproducible WebDataset tar shards."""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
# The fixed fields between the name, size and checksum fields.
_AFTER_NAME = bytes(_HEADER_TEMPLATE[100:124])
_AFTER_SIZE = bytes(_HEADER_TEMPLATE[136:148])
_AFTER_CHECKSUM = bytes(_HEADER_TEMPLATE[156:])
_ZEROS = bytes(_BLOCK_SIZE)


def member_bytes(name: str, data: bytes) -> bytes:
    """Return the tar header, data and padding of one member, as USTAR lays them out."""
    encoded = name.encode("ascii")
    if len(encoded) > 100 or len(data) > _MAX_MEMBER_SIZE:
        raise BinconvError(f"tar member {name!r} of {len(data)} bytes does not fit a USTAR header")
    size_field = b"%011o\x00" % len(data)
    checksum = _TEMPLATE_CHECKSUM + sum(encoded) + sum(size_field)
    # One join, so the data is copied once.
    return b"".join(
        (
            encoded,
            _ZEROS[: 100 - len(encoded)],
            _AFTER_NAME,
            size_field,
            _AFTER_SIZE,
            b"%06o\x00 " % checksum,
            _AFTER_CHECKSUM,
            data,
            _ZEROS[: -len(data) % _BLOCK_SIZE],
        )
    )


def tar_end(size: int) -> bytes:
    """Return the end-of-archive blocks for a tar of `size` bytes so far, padded to a record."""
    end = 2 * _BLOCK_SIZE
    return bytes(end + (-(size + end) % _RECORD_SIZE))


# Members are written in batches of about this many bytes: large enough for
# few write calls, small enough that memory stays low.
_BATCH_SIZE = 1 << 20
# Shards whose sync and rename may wait in the background thread at once.
_MAX_PENDING = 8


@dataclass
class _OpenShard:
    """A shard being written: its partial file is open and its hash covers what was written."""

    name: str
    first_pair: int
    file: BinaryIO
    # Exits open_atomic_write: an exception removes the partial file, a
    # normal exit syncs it and renames it to the shard's name.
    closer: contextlib.ExitStack
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    num_pairs: int = 0
    batch: list[bytes] = field(default_factory=list)
    batch_size: int = 0

    def add(self, member: bytes) -> None:
        self.batch.append(member)
        self.batch_size += len(member)
        if self.batch_size >= _BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        data = b"".join(self.batch)
        self.sha256.update(data)
        self.file.write(data)
        self.size += len(data)
        self.batch.clear()
        self.batch_size = 0


class PairShardWriter:
    """Writes consecutive pairs into shards `NAME-000000.tar`, ... under `out_dir`.

    Each shard is written atomically (see `open_atomic_write`), so a shard
    file that exists is complete. Members are hashed and written in batches
    of about 1 MiB. Syncing a full shard to disk and renaming it happen in a
    background thread while the next shard is written, because a sync waits
    for the disk and uses no CPU. Call `close` to finish the last shard and
    get the list of shards, or `abort` after an error; the caller writes the
    manifest after `close`.

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
        # Shards whose files are complete, in order.
        self.shards: list[ShardInfo] = []
        self.image_formats: Counter[str] = Counter()
        self.num_pairs = 0
        self.num_positive = 0
        self._current: _OpenShard | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[ShardInfo, Future[None]]] = deque()

    def write(self, pair: Pair) -> None:
        """Add the next pair; its index must follow the previous pair's.

        Raises:
            BinconvError: The pair is out of order, or an image has no
                recognised image signature.
            OSError: Writing or syncing a shard failed.
        """
        if pair.index != self.num_pairs:
            raise BinconvError(
                f"{self.source}: pairs must be written in order: got pair {pair.index}, "
                f"expected {self.num_pairs}"
            )
        members = pair_members(pair, self.source)
        for name, _ in members[:2]:
            self.image_formats[name[name.rindex(".") + 1 :]] += 1
        shard = self._current if self._current is not None else self._open_shard()
        for name, data in members:
            shard.add(member_bytes(name, data))
        shard.num_pairs += 1
        self.num_pairs += 1
        self.num_positive += int(pair.issame)
        if shard.num_pairs == self.pairs_per_shard:
            self._finish_shard()

    def close(self) -> tuple[ShardInfo, ...]:
        """Write the last, partial shard, wait for all syncs and return all shards in order."""
        if self._current is not None:
            self._finish_shard()
        self._wait_pending(0)
        self._shutdown()
        return tuple(self.shards)

    def abort(self) -> None:
        """Remove the shard being written and wait for pending syncs, dropping their errors.

        Afterwards `shards` lists every shard file this writer completed.
        """
        if self._current is not None:
            shard, self._current = self._current, None
            error = BinconvError(f"{self.source}: conversion aborted")
            shard.closer.__exit__(BinconvError, error, None)
        while self._pending:
            info, future = self._pending.popleft()
            # A failed sync has already removed its partial file.
            with contextlib.suppress(Exception):
                future.result()
                self.shards.append(info)
        self._shutdown()

    def _open_shard(self) -> _OpenShard:
        name = shard_name(self.dataset, len(self.shards) + len(self._pending))
        closer = contextlib.ExitStack()
        file = closer.enter_context(open_atomic_write(join_url(self.out_dir, name)))
        self._current = _OpenShard(name, self.num_pairs, file, closer)
        return self._current

    def _finish_shard(self) -> None:
        shard = self._current
        assert shard is not None  # called only while a shard is open
        shard.flush()
        shard.batch.append(tar_end(shard.size))
        shard.flush()
        info = ShardInfo(
            url=shard.name,
            nsamples=shard.num_pairs,
            first_pair=shard.first_pair,
            size=shard.size,
            sha256=shard.sha256.hexdigest(),
        )
        self._wait_pending(_MAX_PENDING - 1)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-sync")
        self._pending.append((info, self._executor.submit(shard.closer.close)))
        self._current = None

    def _wait_pending(self, keep: int) -> None:
        # Wait for the oldest pending shards until at most `keep` remain.
        while len(self._pending) > keep:
            info, future = self._pending[0]
            future.result()
            self._pending.popleft()
            self.shards.append(info)

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
