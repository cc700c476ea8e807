"""A pickled list that stores images and labels in flat arrays instead of one object each.

The images list of a `.bin` file has one entry per image, so storing each
entry as a Python object would make memory grow with the file. `PickleList`
stores a valid encoded image (bytes, a Python 2 string or a uint8 NumPy
array) as its location in the file, and a bool or an int as its value.
Either takes about 26 bytes of arrays per entry. Only other values are kept
as objects.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .format import detect_image_type
from .pickle_numpy import NumpyArray
from .pickle_values import BytesSpan

__all__ = ["ORIGINS", "ImageRecord", "PickleList", "image_data"]

# Origins of image entries (how each image was pickled), indexed by the code
# stored per entry.
ORIGINS = ("bytes", "py2-str", "numpy")
_ORIGIN_CODES = {origin: code for code, origin in enumerate(ORIGINS)}
# Origin codes of entries that are not images.
_OBJECT = 3
_FALSE = 4
_TRUE = 5
_INT = 6
_INT64_RANGE = range(-(2**63), 2**63)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """An image entry of a `PickleList`, as read back from its arrays.

    Attributes:
        origin: `bytes`, `py2-str` or `numpy`: how the image was pickled.
        offset: File offset of the stored data.
        length: Number of stored bytes in the file.
        size: Number of bytes after decoding.
        encoding: `RAW` or `LATIN1_TEXT`, as in `BytesSpan`.
    """

    origin: str
    offset: int
    length: int
    size: int
    encoding: int

    def describe(self) -> str:
        """Describe the entry as `describe_value` describes the value that was appended."""
        return "a NumpyArray" if self.origin == "numpy" else f"{self.size} bytes"


def image_data(value: object) -> tuple[BytesSpan, str] | None:
    """Return the data and origin of `value` if it is a valid encoded image entry, else None.

    A valid entry is bytes or a Python 2 string, or a uint8 NumPy array with
    at most one dimension longer than 1, whose data starts with the magic
    bytes of an image format that `detect_image_type` recognises.
    """
    if isinstance(value, BytesSpan):
        span, origin = value, value.origin
    elif isinstance(value, NumpyArray):
        shape, dtype, data = value.shape, value.dtype, value.data
        if shape is None or dtype is None or data is None or dtype.typestr != "u1":
            return None
        # The shapes that cv2.imencode gives, (n, 1) and (n,), need no loop.
        common = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
        if not common and sum(1 for n in shape if n != 1) > 1:
            return None
        span, origin = data, "numpy"
    else:
        return None
    if detect_image_type(span.head) is None:
        return None
    return span, origin


class PickleList:
    """A list built by the pickle interpreter, stored as the module docstring describes.

    Image entries are stored as locations, so reading them back yields
    `ImageRecord` values instead of the `BytesSpan` or `NumpyArray` that
    were appended.
    """

    __slots__ = ("codes", "encodings", "lengths", "objects", "offsets", "sizes")

    def __init__(self, items: Iterable[object] = ()) -> None:
        self.offsets = array("q")
        self.lengths = array("q")
        self.sizes = array("q")
        self.encodings = bytearray()
        # Index into ORIGINS for images, or one of the codes above.
        self.codes = bytearray()
        self.objects: dict[int, object] = {}
        self.extend(items)

    def __len__(self) -> int:
        return len(self.codes)

    def describe(self) -> str:
        """Describe the list for error messages, as `describe_value` describes a list."""
        return f"a list of {len(self)} items"

    def append(self, value: object) -> None:
        """Add `value` at the end."""
        offset = length = size = encoding = 0
        if value is True or value is False:
            code = _TRUE if value else _FALSE
        elif type(value) is int and value in _INT64_RANGE:
            code, offset = _INT, value
        else:
            image = image_data(value)
            if image is None:
                code = _OBJECT
                self.objects[len(self.codes)] = value
            else:
                span, origin = image
                code = _ORIGIN_CODES[origin]
                offset, length, size, encoding = span.offset, span.length, span.size, span.encoding
        self.offsets.append(offset)
        self.lengths.append(length)
        self.sizes.append(size)
        self.encodings.append(encoding)
        self.codes.append(code)

    def extend(self, values: Iterable[object]) -> None:
        """Add `values` at the end, in order."""
        for value in values:
            self.append(value)

    def __iter__(self) -> Iterator[object]:
        for index in range(len(self.codes)):
            yield self[index]

    def __getitem__(self, index: int) -> object:
        if index < 0:
            index += len(self.codes)
        code = self.codes[index]
        if code < len(ORIGINS):
            return ImageRecord(
                ORIGINS[code],
                self.offsets[index],
                self.lengths[index],
                self.sizes[index],
                self.encodings[index],
            )
        if code == _OBJECT:
            return self.objects[index]
        if code == _INT:
            return self.offsets[index]
        return code == _TRUE

    def __repr__(self) -> str:
        # As a list's, because error messages show values such as a shape.
        return repr(list(self))
