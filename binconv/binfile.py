"""Safe reading of legacy `.bin` files: one pass to index them, then the images in order.

A `.bin` is a pickle of `(images, issame)` where images `2i` and `2i + 1`
form pair `i`. `read_bin_index` interprets the pickle with
`RestrictedUnpickler`, which runs no code from the file, hashes the file in
the same pass, and records where each image's bytes lie. `iter_bin_pairs`
then reads the images back by position, about 1 MiB of the file at a time,
so neither the whole file nor the decoded images are held in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import BinFileError
from .hashing_reader import HashingReader
from .manifest import SourceInfo
from .pickle_list import ORIGINS, PickleList
from .pickle_numpy import NumpyArray, decode_integers
from .pickle_values import LATIN1_TEXT, BytesSpan, describe_value
from .safepickle import RestrictedUnpickler
from .shardwriter import Pair

__all__ = ["BinIndex", "hash_file", "iter_bin_pairs", "read_bin_index", "read_image"]

logger = logging.getLogger(__name__)

_CHUNK_SIZE = 1 << 20
_IMAGE_TYPES = "JPEG, PNG, BMP, GIF, TIFF or WebP"


@dataclass(frozen=True)
class BinIndex:
    """Image locations, labels and provenance of a `.bin` file.

    Image `i` is `image_lengths[i]` stored bytes at `image_offsets[i]`,
    stored as `image_encodings[i]` (`RAW` or `LATIN1_TEXT`) and
    `image_sizes[i]` bytes once decoded.

    Attributes:
        path: The file.
        size: File size in bytes.
        sha256: Hex SHA-256 of the whole file.
        mtime_ns: Modification time when indexed, to detect a file that changes.
        pickle_protocol: Protocol from the pickle's PROTO opcode.
        image_container: How images were pickled: `bytes`, `py2-str` or
            `numpy`, or several joined by `+` if the file mixes them.
        issame: One byte per pair, 1 for the same person and 0 for different people.
    """

    path: Path
    size: int
    sha256: str
    mtime_ns: int
    pickle_protocol: int
    image_container: str
    issame: bytes
    image_offsets: array[int]
    image_lengths: array[int]
    image_sizes: array[int]
    image_encodings: bytes

    @property
    def num_pairs(self) -> int:
        """Number of pairs."""
        return len(self.issame)

    @property
    def num_positive(self) -> int:
        """Number of pairs of the same person."""
        return self.issame.count(1)

    @property
    def image_bytes(self) -> int:
        """Total size of the encoded images in bytes."""
        return sum(self.image_sizes)

    def source_info(self) -> SourceInfo:
        """Return the provenance to record in a dataset manifest."""
        return SourceInfo(
            name=self.path.name,
            size=self.size,
            sha256=self.sha256,
            kind="bin",
            pickle_protocol=self.pickle_protocol,
            image_container=self.image_container,
        )


def hash_file(path: Path) -> tuple[int, str]:
    """Return the size and hex SHA-256 of a file.

    Raises:
        BinFileError: The file is missing or cannot be read.
    """
    sha256 = hashlib.sha256()
    size = 0
    with _open_source(path) as file:
        while chunk := file.read(_CHUNK_SIZE):
            sha256.update(chunk)
            size += len(chunk)
    return size, sha256.hexdigest()


def _open_source(path: Path) -> BinaryIO:
    try:
        return open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise BinFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise BinFileError(f"{path}: is a folder, expected a .bin file") from None
    except OSError as exc:
        raise BinFileError(f"{path}: cannot be read ({exc.strerror})") from None


def read_bin_index(path: Path) -> BinIndex:
    """Interpret a `.bin` file safely and index its images, hashing the file on the way.

    Raises:
        BinFileError: The file is missing, not a pickle, truncated, uses a
            forbidden global or opcode, or does not have the structure of a
            `.bin` file. The message names the file and, where it applies,
            the pair.
    """
    with _open_source(path) as file:
        stat = os.fstat(file.fileno())
        reader = HashingReader(file.fileno(), stat.st_size)
        unpickler = RestrictedUnpickler(reader, str(path))
        top = unpickler.load()
        trailing, sha256 = reader.finish(unpickler.end)
        if trailing:
            logger.warning("%s: ignoring %d bytes after the end of the pickle", path, trailing)

        images, issame = _split_top_level(top, path)
        values = _issame_values(issame, file, path)
        if len(values) != len(images) // 2:
            raise BinFileError(
                f"{path}: {len(images)} images make {len(images) // 2} pairs, but issame has "
                f"{len(values)} entries; expected len(images) == 2 * len(issame)"
            )
        _check_images(images, path)
        labels = _labels(values, path)

    containers = sorted({ORIGINS[code] for code in set(images.codes)})
    return BinIndex(
        path=path,
        size=stat.st_size,
        sha256=sha256,
        mtime_ns=stat.st_mtime_ns,
        pickle_protocol=unpickler.protocol,
        image_container="+".join(containers),
        issame=labels,
        image_offsets=images.offsets,
        image_lengths=images.lengths,
        image_sizes=images.sizes,
        image_encodings=bytes(images.encodings),
    )


def _split_top_level(top: object, path: Path) -> tuple[PickleList, object]:
    if not isinstance(top, tuple | PickleList) or len(top) != 2:
        raise BinFileError(
            f"{path}: expected a pickle of (images, issame), found {describe_value(top)}"
        )
    images, issame = top[0], top[1]
    if isinstance(images, tuple):
        # NOTE: images pickled as a tuple are all objects on the stack until
        # the TUPLE opcode, so memory grows by an object per image for them.
        # Writers of .bin files pickle a list.
        images = PickleList(images)
    if not isinstance(images, PickleList):
        raise BinFileError(f"{path}: images is {describe_value(images)}, expected a list")
    if len(images) % 2:
        raise BinFileError(
            f"{path}: the file has an odd number of images ({len(images)}); "
            "images 2i and 2i+1 must form pair i"
        )
    if len(images) == 0:
        raise BinFileError(f"{path}: the file contains no images, so it has no pairs to convert")
    return images, issame


def _check_images(images: PickleList, path: Path) -> None:
    # PickleList stores every valid image entry as a location, so any other
    # entry is invalid. Report the first one.
    first = images.codes.translate(_NOT_AN_IMAGE_CODE).find(1)
    if first >= 0:
        raise _image_error(images[first], first, path)


# Maps PickleList origin codes of images to 0 and all other codes to 1.
_NOT_AN_IMAGE_CODE = bytes(0 if code < len(ORIGINS) else 1 for code in range(256))


def _image_error(item: object, index: int, path: Path) -> BinFileError:
    where = f"{path}: pair {index // 2}: img{index % 2 + 1} (image {index})"
    if isinstance(item, NumpyArray):
        span = _array_image_span(item, where)
    elif isinstance(item, BytesSpan):
        span = item
    else:
        return BinFileError(
            f"{where} is {describe_value(item)}, expected encoded image bytes "
            "or a uint8 NumPy array"
        )
    return BinFileError(
        f"{where} is not an encoded image (first bytes {span.head[:8].hex()}, "
        f"{span.size} bytes); expected {_IMAGE_TYPES} data"
    )


def _array_image_span(array_value: NumpyArray, where: str) -> BytesSpan:
    shape, dtype, data = array_value.shape, array_value.dtype, array_value.data
    if shape is None or dtype is None or data is None:
        raise BinFileError(f"{where} is a NumPy array without data")
    if dtype.typestr != "u1" or sum(1 for n in shape if n != 1) > 1:
        raise BinFileError(
            f"{where} is a NumPy array of dtype {dtype.typestr} and shape {shape}; "
            "expected uint8 of shape (n,) or (n, 1), as cv2.imencode returns"
        )
    return data


def _issame_values(issame: object, file: BinaryIO, path: Path) -> list[object]:
    if isinstance(issame, NumpyArray):
        return _array_labels(issame, file, path)
    if isinstance(issame, tuple | PickleList):
        return list(issame)
    raise BinFileError(
        f"{path}: issame is {describe_value(issame)}, expected a list or NumPy array"
    )


def _labels(values: list[object], path: Path) -> bytes:
    labels = bytearray(len(values))
    for pair, value in enumerate(values):
        # bool is a subclass of int, so True and False pass this check as 1 and 0.
        if not isinstance(value, int) or value not in (0, 1):
            raise BinFileError(
                f"{path}: pair {pair}: issame is {describe_value(value)}, expected a bool or 0/1"
            )
        labels[pair] = int(value)
    return bytes(labels)


def _array_labels(issame: NumpyArray, file: BinaryIO, path: Path) -> list[object]:
    shape, dtype, data = issame.shape, issame.dtype, issame.data
    if shape is None or dtype is None or data is None:
        raise BinFileError(f"{path}: issame is a NumPy array without data")
    if sum(1 for n in shape if n != 1) > 1:
        raise BinFileError(f"{path}: issame is a NumPy array of shape {shape}, expected (n,)")
    if not dtype.is_integer:
        raise BinFileError(
            f"{path}: issame is a NumPy array of dtype {dtype.typestr}, expected bool or integer"
        )
    raw = data.value if data.value is not None else _read_span(file.fileno(), data, path)
    return list(decode_integers(raw, dtype))


def _read_span(fd: int, span: BytesSpan, path: Path) -> bytes:
    data = os.pread(fd, span.length, span.offset)
    if len(data) != span.length:
        raise _shorter_error(path)
    return _decode_stored(data, span.encoding)


def _decode_stored(data: bytes, encoding: int) -> bytes:
    if encoding == LATIN1_TEXT:
        return data.decode("utf-8").encode("latin-1")
    return data


def _shorter_error(path: Path) -> BinFileError:
    return BinFileError(f"{path}: the file is shorter than when it was indexed; run again")


def read_image(index: BinIndex, fd: int, image: int) -> bytes:
    """Read the encoded bytes of image `image` from `fd`, an open descriptor of the file."""
    span = BytesSpan(
        offset=index.image_offsets[image],
        length=index.image_lengths[image],
        size=index.image_sizes[image],
        encoding=index.image_encodings[image],
        head=b"",
        value=None,
        origin="",
    )
    return _read_span(fd, span, index.path)


class _ImageWindow:
    """A window of at least `_CHUNK_SIZE` bytes of the file, through which images are read.

    Images are usually stored in order, so one read serves hundreds of them.
    """

    def __init__(self, index: BinIndex, fd: int) -> None:
        self._index = index
        self._fd = fd
        self._data = b""
        self._start = 0

    def read(self, image: int) -> bytes:
        index = self._index
        offset, length = index.image_offsets[image], index.image_lengths[image]
        begin = offset - self._start
        if begin < 0 or begin + length > len(self._data):
            self._data = os.pread(self._fd, max(_CHUNK_SIZE, length), offset)
            self._start, begin = offset, 0
            if len(self._data) < length:
                raise _shorter_error(index.path)
        return _decode_stored(self._data[begin : begin + length], index.image_encodings[image])


def iter_bin_pairs(index: BinIndex) -> Iterator[Pair]:
    """Yield the pairs of an indexed `.bin` file in order, reading about 1 MiB at a time.

    Raises:
        BinFileError: The file changed since it was indexed.
    """
    with _open_source(index.path) as file:
        _check_unchanged(index, file)
        window = _ImageWindow(index, file.fileno())
        for pair in range(index.num_pairs):
            img1 = window.read(2 * pair)
            img2 = window.read(2 * pair + 1)
            yield Pair(pair, img1, img2, index.issame[pair] == 1)
        _check_unchanged(index, file)


def _check_unchanged(index: BinIndex, file: BinaryIO) -> None:
    stat = os.fstat(file.fileno())
    if (stat.st_size, stat.st_mtime_ns) != (index.size, index.mtime_ns):
        raise BinFileError(
            f"{index.path}: the file changed while it was being converted; run the command again"
        )
