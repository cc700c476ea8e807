"""NumPy arrays, dtypes and scalars as a pickle describes them, interpreted without NumPy.

A pickled `ndarray` is a call to `_reconstruct` or `_frombuffer` followed by
a state tuple of shape, dtype and raw bytes. The functions here check that
state and keep the raw bytes as a `BytesSpan`, a location in the file, so
image data is never copied into memory by this module.
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import dataclass

from .pickle_values import BytesSpan, UnsupportedValue, describe_value, short_text

__all__ = [
    "NumpyArray",
    "NumpyDtype",
    "array_from_buffer",
    "decode_integers",
    "make_dtype",
    "make_scalar",
    "set_array_state",
    "set_dtype_state",
]

# Numeric dtypes only: kind (bool, signed, unsigned, float, complex) and
# item size in bytes, such as 'u1' or 'f8'. Only bool and integer values can be
# decoded, but any numeric array is accepted here so that the error about a
# wrong image or label names the pair.
_NUMERIC_TYPESTR = re.compile(r"[biufc](1|2|4|8|16)")
_STRUCT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


@dataclass(slots=True)
class NumpyDtype:
    """A numeric `numpy.dtype`. BUILD sets its byte order after the dtype is created."""

    typestr: str
    byteorder: str = "|"

    @property
    def itemsize(self) -> int:
        """Size of one element in bytes."""
        return int(self.typestr[1:])

    @property
    def is_integer(self) -> bool:
        """Whether elements are bools or integers, which `decode_integers` can decode."""
        return self.typestr[0] in "biu" and self.itemsize <= 8


@dataclass(slots=True)
class NumpyArray:
    """A pickled `numpy.ndarray`. `_reconstruct` creates it empty and BUILD fills it."""

    shape: tuple[int, ...] | None = None
    dtype: NumpyDtype | None = None
    data: BytesSpan | None = None


def make_dtype(args: tuple[object, ...]) -> NumpyDtype:
    """Interpret `numpy.dtype(typestr, align, copy)`."""
    typestr = short_text(args[0]) if args else None
    if typestr is None:
        raise UnsupportedValue(
            f"numpy.dtype called with {describe_value(args)}, expected a type string"
        )
    if not _NUMERIC_TYPESTR.fullmatch(typestr):
        raise UnsupportedValue(
            f"NumPy dtype {typestr!r} is not supported: images must be uint8 ('u1'), "
            "issame bool ('b1') or integer"
        )
    return NumpyDtype(typestr)


def set_dtype_state(dtype: NumpyDtype, state: object) -> None:
    """Apply a dtype's pickled state `(version, byteorder, subarray, names, fields, ...)`."""
    byteorder = short_text(state[1]) if isinstance(state, tuple) and len(state) >= 5 else None
    if not isinstance(state, tuple) or byteorder not in ("<", ">", "|", "="):
        raise UnsupportedValue(f"invalid NumPy dtype state: {describe_value(state)}")
    if state[2] is not None or state[3] is not None or state[4] is not None:
        raise UnsupportedValue("structured and sub-array NumPy dtypes are not supported")
    dtype.byteorder = byteorder


def set_array_state(array: NumpyArray, state: object) -> None:
    """Apply an array's pickled state `([version,] shape, dtype, is_fortran, data)`."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise UnsupportedValue(f"invalid NumPy array state: {describe_value(state)}")
    shape, dtype, _is_fortran, data = state[-4:]
    _fill_array(array, shape, dtype, data)


def array_from_buffer(args: tuple[object, ...]) -> NumpyArray:
    """Interpret `_frombuffer(buffer, dtype, shape, order)`, how protocol 5 writes arrays."""
    if len(args) != 4:
        raise UnsupportedValue(f"_frombuffer called with {len(args)} arguments, expected 4")
    data, dtype, shape, _order = args
    array = NumpyArray()
    _fill_array(array, shape, dtype, data)
    return array


def _fill_array(array: NumpyArray, shape: object, dtype: object, data: object) -> None:
    if not isinstance(dtype, NumpyDtype):
        raise UnsupportedValue(f"NumPy array with dtype {describe_value(dtype)} is not supported")
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise UnsupportedValue(f"NumPy array with invalid shape {shape!r}")
    if not isinstance(data, BytesSpan):
        raise UnsupportedValue(
            f"NumPy array whose data is {describe_value(data)}, expected raw bytes "
            "(object arrays are not supported)"
        )
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != data.size:
        raise UnsupportedValue(
            f"NumPy array of shape {shape} and dtype {dtype.typestr} needs "
            f"{count * dtype.itemsize} bytes, but its data has {data.size}"
        )
    array.shape, array.dtype, array.data = shape, dtype, data


def make_scalar(args: tuple[object, ...]) -> int | bool:
    """Interpret `numpy.core.multiarray.scalar(dtype, data)` as a Python bool or int."""
    if len(args) != 2:
        raise UnsupportedValue(f"NumPy scalar with arguments {describe_value(args)}")
    dtype, data = args
    if not isinstance(dtype, NumpyDtype) or not dtype.is_integer:
        raise UnsupportedValue(
            f"NumPy scalar of {describe_value(dtype)} is not supported; expected bool or integer"
        )
    if not isinstance(data, BytesSpan) or data.value is None or data.size != dtype.itemsize:
        raise UnsupportedValue(f"NumPy {dtype.typestr} scalar with data {describe_value(data)}")
    value = decode_integers(data.value, dtype)[0]
    return bool(value) if dtype.typestr == "b1" else value


def decode_integers(raw: bytes, dtype: NumpyDtype) -> tuple[int, ...]:
    """Decode the raw bytes of a bool or integer array into Python ints."""
    if not dtype.is_integer:
        raise UnsupportedValue(f"cannot decode NumPy {dtype.typestr} values as integers")
    code = _STRUCT_CODES[dtype.itemsize]
    if dtype.typestr[0] in ("u", "b"):
        code = code.upper()
    order = {"<": "<", ">": ">", "|": "<", "=": "<" if sys.byteorder == "little" else ">"}
    count = len(raw) // dtype.itemsize
    return struct.unpack(f"{order[dtype.byteorder]}{count}{code}", raw)
