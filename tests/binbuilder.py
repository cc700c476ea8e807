"""Builders of legacy `.bin` files in every form found in the wild, for the tests.

Files that Python 3 writes are made with `pickle` itself and the installed
NumPy 2. Files that only Python 2 or NumPy 1 wrote are assembled opcode by
opcode with `OpcodeWriter`, in the layout those writers use.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from binconv.synthetic import FaceIdentity, encode_image, render_face

# How images are pickled by `write_bin`.
IMAGE_FORMS = ("bytes", "numpy-n1", "numpy-n")
# How issame is pickled by `write_bin`.
ISSAME_FORMS = ("bool", "numpy-bool", "int", "numpy-array")


def face_jpegs(count: int, seed: int = 0, size: tuple[int, int] = (112, 112)) -> list[bytes]:
    """Return `count` distinct generated JPEG faces."""
    return [
        encode_image(render_face(FaceIdentity.from_seed(seed * 10_000 + i), i % 3, size))
        for i in range(count)
    ]


def face_png(seed: int = 0, size: tuple[int, int] = (112, 112)) -> bytes:
    """Return one generated face as PNG."""
    return encode_image(render_face(FaceIdentity.from_seed(seed), 0, size), "PNG")


def gray_jpeg(seed: int = 0, size: tuple[int, int] = (112, 112)) -> bytes:
    """Return one generated face as a grayscale JPEG."""
    image = render_face(FaceIdentity.from_seed(seed), 0, size).convert("L")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def alternating_issame(num_pairs: int) -> list[bool]:
    """Return issame labels that start positive and alternate."""
    return [pair % 2 == 0 for pair in range(num_pairs)]


def _pickled_images(images: Sequence[bytes], form: str) -> list[object]:
    if form == "bytes":
        # bytes(bytearray(...)) makes distinct objects, so pickle memoizes none of them.
        return [bytes(bytearray(image)) for image in images]
    arrays = [np.frombuffer(image, dtype=np.uint8).copy() for image in images]
    if form == "numpy-n1":
        return [array.reshape(-1, 1) for array in arrays]
    if form == "numpy-n":
        return list(arrays)
    raise ValueError(f"unknown image form {form!r}")


def _pickled_issame(issame: Sequence[bool], form: str) -> object:
    if form == "bool":
        return [bool(value) for value in issame]
    if form == "numpy-bool":
        return [np.bool_(value) for value in issame]
    if form == "int":
        return [int(value) for value in issame]
    if form == "numpy-array":
        return np.array(issame, dtype=bool)
    raise ValueError(f"unknown issame form {form!r}")


def write_bin(
    path: Path,
    images: Sequence[bytes],
    issame: Sequence[bool],
    *,
    protocol: int = 4,
    images_as: str = "bytes",
    issame_as: str = "bool",
    as_list: bool = False,
) -> Path:
    """Write a `.bin` as Python 3 writes one, with `pickle.dump` and the installed NumPy.

    Args:
        path: Output file.
        images: Encoded images; images `2i` and `2i + 1` form pair `i`.
        issame: One label per pair.
        protocol: Pickle protocol, 2 to 5.
        images_as: One of `IMAGE_FORMS`.
        issame_as: One of `ISSAME_FORMS`.
        as_list: Write `[images, issame]` instead of a tuple.
    """
    images_value = _pickled_images(images, images_as)
    issame_value = _pickled_issame(issame, issame_as)
    value = [images_value, issame_value] if as_list else (images_value, issame_value)
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    return path


class OpcodeWriter:
    """Assembles a pickle opcode by opcode, memoizing each value like cPickle does."""

    def __init__(self, protocol: int) -> None:
        self._parts = [pickle.PROTO + bytes([protocol])]
        self._memo_size = 0

    def raw(self, data: bytes) -> OpcodeWriter:
        self._parts.append(data)
        return self

    def put(self) -> OpcodeWriter:
        index = self._memo_size
        self._memo_size += 1
        if index < 256:
            return self.raw(pickle.BINPUT + bytes([index]))
        return self.raw(pickle.LONG_BINPUT + struct.pack("<I", index))

    def get(self, index: int) -> OpcodeWriter:
        return self.raw(pickle.BINGET + bytes([index]))

    def py2_str(self, data: bytes) -> OpcodeWriter:
        if len(data) < 256:
            return self.raw(pickle.SHORT_BINSTRING + bytes([len(data)]) + data).put()
        return self.raw(pickle.BINSTRING + struct.pack("<i", len(data)) + data).put()

    def py3_bytes(self, data: bytes) -> OpcodeWriter:
        if len(data) < 256:
            return self.raw(pickle.SHORT_BINBYTES + bytes([len(data)]) + data).put()
        return self.raw(pickle.BINBYTES + struct.pack("<I", len(data)) + data).put()

    def unicode(self, text: str) -> OpcodeWriter:
        data = text.encode("utf-8")
        return self.raw(pickle.BINUNICODE + struct.pack("<I", len(data)) + data).put()

    def global_(self, module: str, name: str) -> OpcodeWriter:
        return self.raw(pickle.GLOBAL + f"{module}\n{name}\n".encode()).put()

    def int_(self, value: int) -> OpcodeWriter:
        if 0 <= value < 256:
            return self.raw(pickle.BININT1 + bytes([value]))
        return self.raw(pickle.BININT + struct.pack("<i", value))

    def bool_(self, value: bool) -> OpcodeWriter:
        return self.raw(pickle.NEWTRUE if value else pickle.NEWFALSE)

    def getvalue(self) -> bytes:
        return b"".join(self._parts) + pickle.STOP


def write_py2_bin(path: Path, images: Sequence[bytes], issame: Sequence[bool]) -> Path:
    """Write a `.bin` as Python 2 `cPickle.dump((images, issame), f, protocol=2)` does.

    Images are Python 2 `str` (SHORT_BINSTRING or BINSTRING), lists are
    built in batches of up to 1,000 APPENDS, and every value is memoized.
    """
    writer = OpcodeWriter(2)
    _py2_list(writer, [lambda image=image: writer.py2_str(image) for image in images])
    _py2_list(writer, [lambda value=value: writer.bool_(value) for value in issame])
    writer.raw(pickle.TUPLE2).put()
    path.write_bytes(writer.getvalue())
    return path


def _py2_list(writer: OpcodeWriter, items: list[Callable[[], object]]) -> None:
    writer.raw(pickle.EMPTY_LIST).put()
    for start in range(0, len(items), 1000):
        batch = items[start : start + 1000]
        if len(batch) > 1:
            writer.raw(pickle.MARK)
        for emit in batch:
            emit()
        writer.raw(pickle.APPENDS if len(batch) > 1 else pickle.APPEND)


def write_numpy1_bin(
    path: Path, images: Sequence[bytes], issame: Sequence[bool], *, python2: bool
) -> Path:
    """Write a `.bin` of NumPy 1 arrays as `numpy.core.multiarray._reconstruct` calls.

    Images are uint8 arrays of shape (n, 1) and issame a bool array. With
    `python2`, the file is what Python 2 writes at protocol 2 (strings as
    BINSTRING); otherwise what Python 3 writes at protocol 3 (BINBYTES).
    """
    writer = OpcodeWriter(2 if python2 else 3)
    writer.raw(pickle.EMPTY_LIST).put().raw(pickle.MARK)
    for image in images:
        _numpy1_array(writer, image, (len(image), 1), "u1", python2)
    writer.raw(pickle.APPENDS)
    _numpy1_array(writer, bytes(bytearray(issame)), (len(issame),), "b1", python2)
    writer.raw(pickle.TUPLE2).put()
    path.write_bytes(writer.getvalue())
    return path


def _numpy1_array(
    writer: OpcodeWriter, data: bytes, shape: tuple[int, ...], typestr: str, python2: bool
) -> None:
    def text(value: str) -> None:
        if python2:
            writer.py2_str(value.encode("latin-1"))
        else:
            writer.unicode(value)

    string = writer.py2_str if python2 else writer.py3_bytes

    writer.global_("numpy.core.multiarray", "_reconstruct")
    writer.global_("numpy", "ndarray")
    writer.int_(0).raw(pickle.TUPLE1).put()
    string(b"b")
    writer.raw(pickle.TUPLE3).put().raw(pickle.REDUCE).put()

    writer.raw(pickle.MARK).int_(1)
    writer.raw(pickle.MARK)
    for n in shape:
        writer.int_(n)
    writer.raw(pickle.TUPLE).put()
    writer.global_("numpy", "dtype")
    text(typestr)
    writer.int_(0).int_(1).raw(pickle.TUPLE3).put().raw(pickle.REDUCE).put()
    writer.raw(pickle.MARK).int_(3)
    text("|")
    writer.raw(pickle.NONE * 3).int_(-1).int_(-1).int_(0).raw(pickle.TUPLE).put()
    writer.raw(pickle.BUILD)
    writer.bool_(False)
    string(data)
    writer.raw(pickle.TUPLE).put().raw(pickle.BUILD)


def malicious_bin(path: Path, marker: Path, *, stack_global: bool = False) -> Path:
    """Write a pickle that runs `touch MARKER` through `posix.system` when loaded.

    With `stack_global`, the global is named with STACK_GLOBAL (protocol 4)
    instead of GLOBAL.
    """
    command = f"touch {marker}"
    if stack_global:
        writer = OpcodeWriter(4)
        writer.raw(pickle.SHORT_BINUNICODE + bytes([5]) + b"posix").put()
        writer.raw(pickle.SHORT_BINUNICODE + bytes([6]) + b"system").put()
        writer.raw(pickle.STACK_GLOBAL).put()
    else:
        writer = OpcodeWriter(2)
        writer.global_("posix", "system")
    writer.unicode(command).raw(pickle.TUPLE1).put().raw(pickle.REDUCE).put()
    path.write_bytes(writer.getvalue())
    return path
