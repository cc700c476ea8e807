"""Values of the restricted pickle interpreter that stand for strings stored in the file."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LATIN1_TEXT",
    "RAW",
    "BytesSpan",
    "TextSpan",
    "UnsupportedValue",
    "describe_value",
    "short_text",
]

# Encodings of the stored bytes of a BytesSpan.
RAW = 0
LATIN1_TEXT = 1


class UnsupportedValue(Exception):
    """A pickled value that binconv does not accept. The message names the value and the reason."""


@dataclass(frozen=True, slots=True)
class BytesSpan:
    """Bytes stored in the file, located so that they can be read again later.

    Attributes:
        offset: File offset of the stored data.
        length: Number of stored bytes in the file.
        size: Number of bytes after decoding.
        encoding: `RAW` when the stored bytes are the value, `LATIN1_TEXT`
            when they are UTF-8 text whose characters are the bytes (how
            Python 3 writes `bytes` at protocol 2).
        head: The first decoded bytes, enough to recognise image magic bytes.
        value: The whole decoded value if it is short, else None.
        origin: `bytes` or `py2-str`, the Python type that was pickled.
    """

    offset: int
    length: int
    size: int
    encoding: int
    head: bytes
    value: bytes | None
    origin: str


@dataclass(frozen=True, slots=True)
class TextSpan:
    """A Unicode string stored in the file as UTF-8.

    Attributes:
        offset: File offset of the UTF-8 data.
        length: Number of UTF-8 bytes in the file.
        size: Number of characters.
        value: The string if it is short, else None.
        latin1_head: The first characters encoded as Latin-1, or None if the
            string has a character above U+00FF and so cannot stand for bytes.
    """

    offset: int
    length: int
    size: int
    value: str | None
    latin1_head: bytes | None


def short_text(value: object) -> str | None:
    """Return the string that `value` stands for if it is a short string, else None.

    Python 2 pickles write names such as dtype type strings as `str`, which
    is bytes, so a short Python 2 string counts as text too.
    """
    if isinstance(value, TextSpan):
        return value.value
    if isinstance(value, BytesSpan) and value.origin == "py2-str" and value.value is not None:
        return value.value.decode("latin-1")
    return None


def describe_value(value: object) -> str:
    """Describe an interpreted value in a few words, for error messages."""
    if isinstance(value, BytesSpan):
        return f"{value.size} bytes"
    if isinstance(value, TextSpan):
        return f"a string of {value.size} characters"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, bool | int):
        return f"the {type(value).__name__} {value!r}"
    return f"a {type(value).__name__}"
