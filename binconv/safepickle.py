"""A restricted pickle interpreter that never runs code from the file.

`pickle.load` calls whatever global a pickle names, so loading an untrusted
`.bin` can run any command. `RestrictedUnpickler` instead walks the opcodes
with `pickletools.genops` and runs a small stack machine of its own. It accepts
only the opcodes that protocol 2 to 5 use for tuples, lists, ints, bools,
strings and bytes, and the few globals that NumPy arrays and Python 3 `bytes`
need, which it interprets itself instead of calling them. Every other opcode
or global raises `BinFileError` naming the file and the byte position.

Strings and bytes become `BytesSpan`/`TextSpan` locations in the file, so the
interpreter keeps no image data in memory.
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol, cast

from .errors import BinFileError
from .pickle_numpy import (
    NumpyArray,
    NumpyDtype,
    array_from_buffer,
    make_dtype,
    make_scalar,
    set_array_state,
    set_dtype_state,
)
from .pickle_values import (
    LATIN1_TEXT,
    RAW,
    BytesSpan,
    TextSpan,
    UnsupportedValue,
    describe_value,
    short_text,
)

__all__ = ["ALLOWED_GLOBALS", "AllowedGlobal", "PickleStream", "RestrictedUnpickler"]

HIGHEST_PROTOCOL = 5
# Bytes and strings up to this size keep their value. Longer ones (images)
# are kept only as a location in the file.
SHORT_VALUE_SIZE = 256
HEAD_SIZE = 16


@dataclass(frozen=True)
class AllowedGlobal:
    """A global that a .bin file may name. Its `role` selects how REDUCE interprets it."""

    module: str
    name: str
    role: str


def _allow(role: str, *names: str) -> dict[tuple[str, str], AllowedGlobal]:
    allowed = {}
    for dotted in names:
        module, _, name = dotted.rpartition(".")
        allowed[(module, name)] = AllowedGlobal(module, name, role)
    return allowed


# NumPy 1 pickles name `numpy.core`, NumPy 2 `numpy._core`. Python 3 writes
# `bytes` at protocol 2 as `_codecs.encode(text, "latin1")` and empty bytes as
# `bytes()`, naming the builtins module `__builtin__` for Python 2 readers.
ALLOWED_GLOBALS: dict[tuple[str, str], AllowedGlobal] = {
    **_allow(
        "reconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
    ),
    **_allow("ndarray", "numpy.ndarray"),
    **_allow("dtype", "numpy.dtype"),
    **_allow("scalar", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"),
    **_allow("frombuffer", "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer"),
    **_allow("codecs_encode", "_codecs.encode"),
    **_allow("bytes", "__builtin__.bytes", "builtins.bytes"),
}

# Size of the length field between a string opcode and its data.
_LENGTH_FIELD_SIZE = {
    "SHORT_BINSTRING": 1,
    "BINSTRING": 4,
    "SHORT_BINBYTES": 1,
    "BINBYTES": 4,
    "BINBYTES8": 8,
    "BYTEARRAY8": 8,
    "SHORT_BINUNICODE": 1,
    "BINUNICODE": 4,
    "BINUNICODE8": 8,
}


class PickleStream(Protocol):
    """Stream interface that `pickletools.genops` reads from. `tell` must return file offsets."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self) -> bytes: ...

    def tell(self) -> int: ...


class RestrictedUnpickler:
    """Interprets one pickle from a stream, allowing only the values .bin files need.

    Args:
        stream: Binary stream positioned at the pickle's first byte, which
            is at file offset 0, because spans record offsets from `tell`.
        source: Name of the file, used in error messages.
    """

    def __init__(self, stream: PickleStream, source: str) -> None:
        self._stream = stream
        self._source = source
        self._stack: list[object] = []
        self._marks: list[int] = []
        # NOTE: like pickle itself, the memo keeps every memoized value until the
        # end, so memory grows by a small record per image (under 1 KB) even
        # though image bytes are never held.
        self._memo: dict[int, object] = {}
        self.protocol = 0
        self._handlers: dict[str, Callable[[object, int], object]] = self._make_handlers()

    def load(self) -> object:
        """Interpret the pickle up to its STOP opcode and return the top-level value.

        Raises:
            BinFileError: The data is not a pickle of protocol 2 to 5, is
                truncated, or uses an opcode or global that is not allowed.
        """
        # genops calls only read, readline and tell, which PickleStream provides.
        opcodes = pickletools.genops(cast("IO[bytes]", self._stream))
        started = False
        while True:
            try:
                opcode, arg, found_at = next(opcodes)
            except ValueError as exc:  # includes UnicodeDecodeError
                raise self._read_error(exc, started) from None
            started = True
            position = found_at if found_at is not None else -1
            if position == 0 and opcode.name != "PROTO":
                raise self._error(
                    0,
                    "not a pickle of protocol 2 or later (no PROTO opcode at the start); "
                    "binconv reads .bin files written by pickle protocol 2 to 5",
                )
            if opcode.name == "STOP":
                return self._pop(position)
            handler = self._handlers.get(opcode.name)
            if handler is None:
                raise self._error(
                    position,
                    f"pickle opcode {opcode.name} is not allowed in a .bin file "
                    "(binconv accepts only lists, tuples, numbers, bytes and NumPy arrays)",
                )
            handler(arg, position)

    def _error(self, position: int, message: str) -> BinFileError:
        return BinFileError(f"{self._source}: byte {position}: {message}")

    def _read_error(self, exc: ValueError, started: bool) -> BinFileError:
        text = str(exc)
        position = self._stream.tell()
        if position == 0:
            return BinFileError(f"{self._source}: the file is empty, not a pickle")
        if not started:
            return BinFileError(f"{self._source}: not a pickle (its first bytes are no opcode)")
        if "exhausted" in text or "remain" in text or "not enough data" in text:
            return BinFileError(
                f"{self._source}: the file is truncated (the pickle data ends before its "
                "STOP opcode); copy or download the file again"
            )
        return BinFileError(f"{self._source}: invalid pickle data near byte {position} ({text})")

    def _make_handlers(self) -> dict[str, Callable[[object, int], object]]:
        handlers: dict[str, Callable[[object, int], object]] = {
            "PROTO": self._proto,
            "FRAME": lambda arg, position: None,
            "MARK": lambda arg, position: self._mark(),
            "POP": lambda arg, position: self._pop(position),
            "POP_MARK": lambda arg, position: self._pop_mark(position),
            "DUP": lambda arg, position: self._push(self._top(position)),
            "EMPTY_TUPLE": lambda arg, position: self._push(()),
            "TUPLE": lambda arg, position: self._push(tuple(self._pop_mark(position))),
            "TUPLE1": lambda arg, position: self._push_tuple(1, position),
            "TUPLE2": lambda arg, position: self._push_tuple(2, position),
            "TUPLE3": lambda arg, position: self._push_tuple(3, position),
            "EMPTY_LIST": lambda arg, position: self._push([]),
            "LIST": lambda arg, position: self._push(self._pop_mark(position)),
            "APPEND": self._append,
            "APPENDS": self._appends,
            "GLOBAL": self._global,
            "STACK_GLOBAL": self._stack_global,
            "REDUCE": self._reduce,
            "BUILD": self._build,
        }
        for name, value in (("NONE", None), ("NEWTRUE", True), ("NEWFALSE", False)):
            handlers[name] = self._constant_handler(value)
        for name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4"):
            handlers[name] = lambda arg, position: self._push(arg)
        for name in ("BINPUT", "LONG_BINPUT"):
            handlers[name] = self._put
        handlers["MEMOIZE"] = lambda arg, position: self._put(len(self._memo), position)
        for name in ("BINGET", "LONG_BINGET"):
            handlers[name] = self._get
        for name in _LENGTH_FIELD_SIZE:
            handlers[name] = self._string_handler(name)
        return handlers

    def _constant_handler(self, value: object) -> Callable[[object, int], object]:
        return lambda arg, position: self._push(value)

    def _string_handler(self, name: str) -> Callable[[object, int], object]:
        field_size = _LENGTH_FIELD_SIZE[name]
        if name.endswith("UNICODE") or name.endswith("UNICODE8"):
            return lambda arg, position: self._push(self._text_span(arg, position + 1 + field_size))
        origin = "py2-str" if name.endswith("STRING") else "bytes"
        return lambda arg, position: self._push(
            self._bytes_span(arg, position + 1 + field_size, origin)
        )

    # Stack and memo.

    def _push(self, value: object) -> None:
        self._stack.append(value)

    def _pop(self, position: int) -> object:
        if len(self._stack) <= (self._marks[-1] if self._marks else 0):
            raise self._error(position, "invalid pickle: the stack is empty")
        return self._stack.pop()

    def _top(self, position: int) -> object:
        value = self._pop(position)
        self._push(value)
        return value

    def _mark(self) -> None:
        self._marks.append(len(self._stack))

    def _pop_mark(self, position: int) -> list[object]:
        if not self._marks:
            raise self._error(position, "invalid pickle: no MARK before this opcode")
        start = self._marks.pop()
        items = self._stack[start:]
        del self._stack[start:]
        return items

    def _push_tuple(self, count: int, position: int) -> None:
        items = [self._pop(position) for _ in range(count)]
        self._push(tuple(reversed(items)))

    def _put(self, arg: object, position: int) -> None:
        assert isinstance(arg, int)  # genops decodes memo indexes as ints
        self._memo[arg] = self._top(position)

    def _get(self, arg: object, position: int) -> None:
        assert isinstance(arg, int)
        if arg not in self._memo:
            raise self._error(position, f"invalid pickle: memo entry {arg} is not defined")
        self._push(self._memo[arg])

    def _proto(self, arg: object, position: int) -> None:
        assert isinstance(arg, int)
        if arg < 2 or arg > HIGHEST_PROTOCOL:
            raise self._error(
                position, f"pickle protocol {arg} is not supported (binconv reads 2 to 5)"
            )
        self.protocol = max(self.protocol, arg)

    # Lists.

    def _append(self, arg: object, position: int) -> None:
        value = self._pop(position)
        self._list_on_top(position).append(value)

    def _appends(self, arg: object, position: int) -> None:
        values = self._pop_mark(position)
        self._list_on_top(position).extend(values)

    def _list_on_top(self, position: int) -> list[object]:
        target = self._top(position)
        if not isinstance(target, list):
            raise self._error(position, f"APPEND to {describe_value(target)}, expected a list")
        return target

    # Strings and bytes.

    def _bytes_span(self, arg: object, offset: int, origin: str) -> BytesSpan:
        # genops returns BINSTRING data decoded as Latin-1, BINBYTES as bytes
        # and BYTEARRAY8 as a bytearray.
        if isinstance(arg, str):
            raw = arg.encode("latin-1")
        else:
            assert isinstance(arg, bytes | bytearray)
            raw = bytes(arg)
        value = raw if len(raw) <= SHORT_VALUE_SIZE else None
        return BytesSpan(offset, len(raw), len(raw), RAW, raw[:HEAD_SIZE], value, origin)

    def _text_span(self, arg: object, offset: int) -> TextSpan:
        assert isinstance(arg, str)
        length = self._stream.tell() - offset
        try:
            latin1_head: bytes | None = arg.encode("latin-1")[:HEAD_SIZE]
        except UnicodeEncodeError:
            latin1_head = None
        value = arg if len(arg) <= SHORT_VALUE_SIZE else None
        return TextSpan(offset, length, len(arg), value, latin1_head)

    def _text_value(self, value: object, position: int, what: str) -> str:
        text = short_text(value)
        if text is not None:
            return text
        raise self._error(position, f"{what} is {describe_value(value)}, expected a short string")

    # Globals and calls.

    def _global(self, arg: object, position: int) -> None:
        assert isinstance(arg, str)
        module, _, name = arg.partition(" ")
        self._push(self._allowed_global(module, name, position))

    def _stack_global(self, arg: object, position: int) -> None:
        name = self._text_value(self._pop(position), position, "STACK_GLOBAL name")
        module = self._text_value(self._pop(position), position, "STACK_GLOBAL module")
        self._push(self._allowed_global(module, name, position))

    def _allowed_global(self, module: str, name: str, position: int) -> AllowedGlobal:
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise self._error(
                position,
                f"forbidden global {module}.{name}: a .bin file may only name NumPy array "
                "and bytes constructors. The file may be malicious: do not open it with pickle",
            )
        return allowed

    def _reduce(self, arg: object, position: int) -> None:
        args = self._pop(position)
        function = self._pop(position)
        if not isinstance(function, AllowedGlobal) or not isinstance(args, tuple):
            raise self._error(
                position,
                f"REDUCE of {describe_value(function)} with {describe_value(args)} is not allowed",
            )
        try:
            self._push(self._call(function, args))
        except UnsupportedValue as exc:
            raise self._error(position, str(exc)) from None

    def _call(self, function: AllowedGlobal, args: tuple[object, ...]) -> object:
        role = function.role
        if role == "reconstruct":
            if not args or args[0] != ALLOWED_GLOBALS[("numpy", "ndarray")]:
                raise UnsupportedValue(f"{function.name} of {describe_value(args)}")
            return NumpyArray()
        if role == "dtype":
            return make_dtype(args)
        if role == "scalar":
            return make_scalar(args)
        if role == "frombuffer":
            return array_from_buffer(args)
        if role == "codecs_encode":
            return self._encoded_text(args)
        if role == "bytes" and not args:
            return BytesSpan(0, 0, 0, RAW, b"", b"", "bytes")
        raise UnsupportedValue(f"calling {function.module}.{function.name} is not allowed")

    def _encoded_text(self, args: tuple[object, ...]) -> BytesSpan:
        text, encoding = args if len(args) == 2 else (args, None)
        if not isinstance(text, TextSpan):
            raise UnsupportedValue(f"_codecs.encode of {describe_value(args)}")
        if short_text(encoding) not in ("latin1", "latin-1"):
            raise UnsupportedValue(f"_codecs.encode with encoding {describe_value(encoding)}")
        if text.latin1_head is None:
            raise UnsupportedValue("_codecs.encode of text that is not Latin-1")
        value = text.value.encode("latin-1") if text.value is not None else None
        return BytesSpan(
            text.offset, text.length, text.size, LATIN1_TEXT, text.latin1_head, value, "bytes"
        )

    def _build(self, arg: object, position: int) -> None:
        state = self._pop(position)
        target = self._top(position)
        try:
            if isinstance(target, NumpyArray):
                set_array_state(target, state)
            elif isinstance(target, NumpyDtype):
                set_dtype_state(target, state)
            else:
                raise UnsupportedValue(f"BUILD on {describe_value(target)} is not allowed")
        except UnsupportedValue as exc:
            raise self._error(position, str(exc)) from None
