"""Writing the legacy `(images, issame)` pickle of a `.bin` file, one opcode at a time."""

from __future__ import annotations

import pickle
import struct
from typing import BinaryIO

from .errors import BinconvError

__all__ = ["LEGACY_PICKLE_PROTOCOL", "LegacyBinWriter"]

# Protocol 3 is the oldest with a `bytes` opcode (BINBYTES), so every
# Python 3 reads the images back as `bytes`, with or without
# `encoding='bytes'`. Framing came with protocol 4 (the "Data stream format"
# section of the Python `pickle` documentation), so no FRAME opcodes are needed.
LEGACY_PICKLE_PROTOCOL = 3

_MAX_BINBYTES = 2**32 - 1  # BINBYTES stores the length in 4 bytes
_ISSAME_BATCH = 1000  # bools per MARK ... APPENDS group, as pickle.dump batches lists


class LegacyBinWriter:
    """Streams a legacy `.bin`: a pickle of `(images, issame)` with `bytes` images and bool labels.

    Images `2i` and `2i+1` are pair `i`. Each image is written as soon as it
    is added, so memory keeps one byte per pair for `issame` (written last,
    because the tuple lists the images first) and no images. The
    stream is complete once `finish` returns.

    Args:
        out: Binary stream that receives the pickle.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._issame = bytearray()
        self.size = 0
        self._write(pickle.PROTO + bytes([LEGACY_PICKLE_PROTOCOL]) + pickle.EMPTY_LIST)

    @property
    def num_pairs(self) -> int:
        """Number of pairs added so far."""
        return len(self._issame)

    @property
    def num_positive(self) -> int:
        """Number of pairs added so far whose `issame` is true."""
        return sum(self._issame)

    def add_pair(self, img1: bytes, img2: bytes, issame: bool) -> None:
        """Append the two encoded images of the next pair and remember its label.

        Raises:
            BinconvError: An image is 4 GiB or larger, which protocol 3 cannot store.
        """
        index = 2 * len(self._issame)
        self._write_image(index, img1)
        self._write_image(index + 1, img2)
        self._issame.append(1 if issame else 0)

    def finish(self) -> None:
        """Write the `issame` list and close the `(images, issame)` tuple."""
        self._write(pickle.EMPTY_LIST)
        for start in range(0, len(self._issame), _ISSAME_BATCH):
            batch = self._issame[start : start + _ISSAME_BATCH]
            labels = b"".join(pickle.NEWTRUE if label else pickle.NEWFALSE for label in batch)
            self._write(pickle.MARK + labels + pickle.APPENDS)
        self._write(pickle.TUPLE2 + pickle.STOP)

    def _write_image(self, index: int, data: bytes) -> None:
        length = len(data)
        if length < 256:
            header = pickle.SHORT_BINBYTES + bytes([length])
        elif length <= _MAX_BINBYTES:
            header = pickle.BINBYTES + struct.pack("<I", length)
        else:
            raise BinconvError(
                f"image {index} (pair {index // 2}) is {length} bytes; a protocol "
                f"{LEGACY_PICKLE_PROTOCOL} pickle stores at most {_MAX_BINBYTES} bytes per image"
            )
        self._write(header)
        self._write(data)
        self._write(pickle.APPEND)

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self.size += len(data)
