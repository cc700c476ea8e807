"""A restricted pickle interpreter that never runs code from the file.

`pickle.load` calls whatever global a pickle names, so loading an untrusted
`.bin` can run any command. `RestrictedUnpickler` instead decodes the
opcodes itself and runs a small stack machine of its own. It accepts only
`ALLOWED_OPCODES`, which protocol 2 to 5 use for tuples, lists, ints, bools,
strings and bytes, and the few globals that NumPy arrays and Python 3
`bytes` need, which it interprets itself instead of calling them. Every
other opcode or global raises `BinFileError` naming the file and the byte
position.

Strings and bytes become `BytesSpan`/`TextSpan` locations in the file, and
lists become `PickleList`s, which store images as locations in flat
arrays. Only the memo entries that the file reads back are kept (see
`collect_memo_references`), so memory does not grow by an object per image.
"""

from __future__ import annotations

import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, cast

from .errors import BinFileError
from .hashing_reader import HashingReader, StreamView
from .pickle_list import PickleList
from .pickle_numpy import (
    NumpyArray,
    NumpyDtype,
    array_from_buffer,
    make_dtype,
    make_scalar,
    set_array_state,
    set_dtype_state,
)
from .pickle_opcodes import (
    ALLOWED_OPCODES,
    LENGTH_FIELDS,
    OPCODES_BY_BYTE,
    SCAN_MARGIN,
    collect_memo_references,
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

__all__ = ["ALLOWED_GLOBALS", "AllowedGlobal", "RestrictedUnpickler"]

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

_NDARRAY = ALLOWED_GLOBALS[("numpy", "ndarray")]

# Opcode bytes of the fast path in RestrictedUnpickler._interpret.
_BINPUT = pickle.BINPUT[0]
_LONG_BINPUT = pickle.LONG_BINPUT[0]
_MEMOIZE = pickle.MEMOIZE[0]
_BINGET = pickle.BINGET[0]
_LONG_BINGET = pickle.LONG_BINGET[0]
_MARK = pickle.MARK[0]
_BININT = pickle.BININT[0]
_BININT1 = pickle.BININT1[0]
_BININT2 = pickle.BININT2[0]
_NONE = pickle.NONE[0]
_NEWTRUE = pickle.NEWTRUE[0]
_NEWFALSE = pickle.NEWFALSE[0]
_TUPLE = pickle.TUPLE[0]
_TUPLE1 = pickle.TUPLE1[0]
_TUPLE2 = pickle.TUPLE2[0]
_TUPLE3 = pickle.TUPLE3[0]
_EMPTY_LIST = pickle.EMPTY_LIST[0]
_APPENDS = pickle.APPENDS[0]
_REDUCE = pickle.REDUCE[0]
_BUILD = pickle.BUILD[0]
_FRAME = pickle.FRAME[0]
_STOP = pickle.STOP[0]
# Groups tested with one `in` each, which is faster than chained comparisons.
_PUT_CODES = (_BINPUT, _LONG_BINPUT, _MEMOIZE)
_GET_CODES = (_BINGET, _LONG_BINGET)
_SMALL_TUPLE_CODES = (_TUPLE1, _TUPLE2, _TUPLE3)
_CONSTANT_CODES = (_NEWFALSE, _NEWTRUE, _NONE)

# Opcodes whose argument is a length and that many bytes of bytes or of a
# Python 2 string, mapped to the `origin` of the resulting BytesSpan.
_BYTES_ORIGINS = {
    pickle.SHORT_BINSTRING[0]: "py2-str",
    pickle.BINSTRING[0]: "py2-str",
    pickle.SHORT_BINBYTES[0]: "bytes",
    pickle.BINBYTES[0]: "bytes",
    pickle.BINBYTES8[0]: "bytes",
    pickle.BYTEARRAY8[0]: "bytes",
}
# Opcodes whose argument is a length and that many bytes of UTF-8 text.
_TEXT_OPCODES = frozenset({pickle.SHORT_BINUNICODE[0], pickle.BINUNICODE[0], pickle.BINUNICODE8[0]})
_Handler = Callable[[object, int], object]


class RestrictedUnpickler:
    """Interprets one pickle from a file, allowing only the values .bin files need.

    Args:
        reader: Reader of the file, which must start with the pickle.
        source: Name of the file, used in error messages.
    """

    def __init__(self, reader: HashingReader, source: str) -> None:
        self._reader = reader
        self._source = source
        self._stack: list[object] = []
        self._marks: list[int] = []
        # Only entries whose index is in _references (see load).
        self._memo: dict[int, object] = {}
        self._references: set[int] = set()
        # Memo indexes ever stored are 0 .. dense_keys - 1 (a local of
        # _interpret) and _sparse_keys. MEMOIZE stores at the index equal to
        # the number of indexes stored, as pickle does.
        self._sparse_keys: set[int] = set()
        self.protocol = 0
        self.end = 0
        self._handlers = self._make_handlers()

    def load(self) -> object:
        """Interpret the pickle up to its STOP opcode and return the top-level value.

        `end` is then the file offset just past STOP.

        Raises:
            BinFileError: The data is not a pickle of protocol 2 to 5, is
                truncated, or uses an opcode or global that is not allowed.
        """
        self._references = collect_memo_references(
            HashingReader(self._reader.file_descriptor, self._reader.size, hashing=False)
        )
        return self._interpret(self._run_slow_opcode(0))

    # Errors.

    def _error(self, position: int, message: str) -> BinFileError:
        return BinFileError(f"{self._source}: byte {position}: {message}")

    def _read_error(self, exc: ValueError, position: int, offset: int) -> BinFileError:
        # `position` is where the opcode starts, `offset` where reading stopped.
        text = str(exc)
        if offset == 0:
            return BinFileError(f"{self._source}: the file is empty, not a pickle")
        if position == 0:
            return BinFileError(f"{self._source}: not a pickle (its first bytes are no opcode)")
        if "exhausted" in text or "remain" in text or "not enough data" in text:
            return BinFileError(
                f"{self._source}: the file is truncated (the pickle data ends before its "
                "STOP opcode); copy or download the file again"
            )
        return BinFileError(f"{self._source}: invalid pickle data near byte {offset} ({text})")

    def _diagnose(self, position: int) -> BinFileError | None:
        """Decode the opcode at `position` as `pickletools.genops` does; return its error, if any.

        The fast path detects a bad opcode or argument but not which error
        `pickletools` reports for it, so the opcode is decoded again here.
        """
        view = StreamView(self._reader, position)
        code = view.read(1)
        opcode = OPCODES_BY_BYTE.get(code[0]) if code else None
        try:
            if not code:
                raise ValueError("pickle exhausted before seeing STOP")
            if opcode is None:
                raise ValueError(f"at position {position}, opcode {code!r} unknown")
            if opcode.arg is not None:
                opcode.arg.reader(cast("IO[bytes]", view))
        except ValueError as exc:  # includes UnicodeDecodeError
            return self._read_error(exc, position, view.tell())
        return None

    def _invalid(self, position: int) -> BinFileError:
        error = self._diagnose(position)
        if error is None:
            raise AssertionError(f"byte {position}: the fast path rejected a valid opcode")
        return error

    # The opcode loop.

    def _interpret(self, offset: int) -> object:
        """Run opcodes from file offset `offset` up to STOP and return the value STOP pops.

        The frequent opcodes are handled inline in this one loop, which
        saves a method call per opcode: a NumPy image takes about 23
        opcodes. The others go through _run_other_opcode. Inline code
        decodes arguments before it checks the stack, as pickletools does,
        and _invalid reports a failed decode.
        """
        reader, stack, marks, memo = self._reader, self._stack, self._marks, self._memo
        references, sparse_keys = self._references, self._sparse_keys
        dense_keys = 0
        unpack_from = struct.unpack_from
        buffer = reader.load(offset, 2 * SCAN_MARGIN)
        base, position, limit = reader.start, 0, reader.scan_limit(SCAN_MARGIN)
        floor = marks[-1] if marks else 0
        try:
            while True:
                if position > limit:
                    buffer = reader.load(base + position, 2 * SCAN_MARGIN)
                    base, position, limit = reader.start, 0, reader.scan_limit(SCAN_MARGIN)
                code = buffer[position]
                if code in _PUT_CODES:
                    if code == _BINPUT:
                        key, size = buffer[position + 1], 2
                    elif code == _LONG_BINPUT:
                        key, size = unpack_from("<I", buffer, position + 1)[0], 5
                    else:
                        key, size = dense_keys + len(sparse_keys), 1
                    if len(stack) <= floor:
                        raise self._empty_stack_error(base + position)
                    if key in references:
                        memo[key] = stack[-1]
                    if key == dense_keys and not sparse_keys:
                        dense_keys += 1
                    elif key >= dense_keys:
                        dense_keys = self._add_sparse_key(key, dense_keys)
                    position += size
                elif code in _GET_CODES:
                    if code == _BINGET:
                        key, size = buffer[position + 1], 2
                    else:
                        key, size = unpack_from("<I", buffer, position + 1)[0], 5
                    value = memo.get(key, memo)
                    if value is memo:
                        raise self._undefined_memo_error(base + position, key, dense_keys)
                    stack.append(value)
                    position += size
                elif code == _BININT1:
                    stack.append(buffer[position + 1])
                    position += 2
                elif code == _MARK:
                    floor = len(stack)
                    marks.append(floor)
                    position += 1
                elif code in _SMALL_TUPLE_CODES:
                    count = code - _TUPLE1 + 1  # the opcodes of TUPLE1..TUPLE3 are consecutive
                    if len(stack) - floor < count:
                        raise self._empty_stack_error(base + position)
                    items = tuple(stack[-count:])
                    del stack[-count:]
                    stack.append(items)
                    position += 1
                elif code == _TUPLE:
                    if not marks:
                        raise self._no_mark_error(base + position)
                    start = marks.pop()
                    floor = marks[-1] if marks else 0
                    items = tuple(stack[start:])
                    del stack[start:]
                    stack.append(items)
                    position += 1
                elif code in _CONSTANT_CODES:
                    stack.append(None if code == _NONE else code == _NEWTRUE)
                    position += 1
                elif code == _REDUCE:
                    self._reduce(None, base + position)
                    position += 1
                elif code == _BUILD:
                    self._build(None, base + position)
                    position += 1
                elif code == _BININT2:
                    stack.append(unpack_from("<H", buffer, position + 1)[0])
                    position += 3
                elif code == _BININT:
                    stack.append(unpack_from("<i", buffer, position + 1)[0])
                    position += 5
                elif code == _FRAME:
                    position += 9
                elif code == _STOP:
                    self.end = base + position + 1
                    return self._pop(base + position)
                else:
                    # These opcodes may move the reader's window.
                    next_offset = self._run_other_opcode(code, base + position)
                    floor = marks[-1] if marks else 0
                    if reader.buffer is not buffer:
                        buffer, base = reader.buffer, reader.start
                        limit = reader.scan_limit(SCAN_MARGIN)
                    position = next_offset - base
        except (IndexError, struct.error):
            raise self._invalid(base + position) from None

    def _run_other_opcode(self, code: int, position: int) -> int:
        """Run an opcode that the loop does not handle inline; return the offset after it."""
        if code in _BYTES_ORIGINS:
            value, end = self._read_bytes(code, position)
            self._stack.append(value)
            return end
        if code in _TEXT_OPCODES:
            text, end = self._read_text(code, position)
            self._stack.append(text)
            return end
        if code == _APPENDS:
            self._appends(None, position)
            return position + 1
        if code == _EMPTY_LIST:
            self._stack.append(PickleList())
            return position + 1
        return self._run_slow_opcode(position)

    def _run_slow_opcode(self, position: int) -> int:
        """Decode the opcode at `position` with `pickletools`, run it, and return the offset after.

        Rare opcodes and the first opcode of the file take this path, which
        reads arguments exactly as `pickletools.genops` does.
        """
        view = StreamView(self._reader, position)
        code = view.read(1)
        opcode = OPCODES_BY_BYTE.get(code[0]) if code else None
        if opcode is None:
            raise self._invalid(position)
        try:
            # StreamView provides the read, readline and tell that argument readers call.
            arg = opcode.arg.reader(cast("IO[bytes]", view)) if opcode.arg is not None else None
        except ValueError as exc:  # includes UnicodeDecodeError
            raise self._read_error(exc, position, view.tell()) from None
        if position == 0 and opcode.name != "PROTO":
            raise self._error(
                0,
                "not a pickle of protocol 2 or later (no PROTO opcode at the start); "
                "binconv reads .bin files written by pickle protocol 2 to 5",
            )
        handler = self._handlers.get(opcode.name) if opcode.name in ALLOWED_OPCODES else None
        if handler is None:
            raise self._error(
                position,
                f"pickle opcode {opcode.name} is not allowed in a .bin file "
                "(binconv accepts only lists, tuples, numbers, bytes and NumPy arrays)",
            )
        handler(arg, position)
        return view.tell()

    def _make_handlers(self) -> dict[str, _Handler]:
        # Handlers of the opcodes that _run_slow_opcode runs, by name, called
        # with the argument that pickletools decoded and the opcode's offset.
        handlers: dict[str, _Handler] = {
            "PROTO": self._proto,
            "POP": lambda arg, position: self._pop(position),
            "POP_MARK": lambda arg, position: self._pop_mark(position),
            "DUP": lambda arg, position: self._push(self._top(position)),
            "EMPTY_TUPLE": lambda arg, position: self._push(()),
            "EMPTY_LIST": lambda arg, position: self._push(PickleList()),
            "LIST": lambda arg, position: self._push(PickleList(self._pop_mark(position))),
            "APPEND": self._append,
            "GLOBAL": self._global,
            "STACK_GLOBAL": self._stack_global,
        }
        for name in ("LONG1", "LONG4"):
            handlers[name] = lambda arg, position: self._push(arg)
        return handlers

    # Stack and memo.

    def _push(self, value: object) -> None:
        self._stack.append(value)

    def _pop(self, position: int) -> object:
        if len(self._stack) <= (self._marks[-1] if self._marks else 0):
            raise self._empty_stack_error(position)
        return self._stack.pop()

    def _empty_stack_error(self, position: int) -> BinFileError:
        return self._error(position, "invalid pickle: the stack is empty")

    def _top(self, position: int) -> object:
        value = self._pop(position)
        self._push(value)
        return value

    def _pop_mark(self, position: int) -> list[object]:
        if not self._marks:
            raise self._no_mark_error(position)
        start = self._marks.pop()
        items = self._stack[start:]
        del self._stack[start:]
        return items

    def _no_mark_error(self, position: int) -> BinFileError:
        return self._error(position, "invalid pickle: no MARK before this opcode")

    def _add_sparse_key(self, key: int, dense_keys: int) -> int:
        # Record a memo index that leaves a gap; return the new dense count.
        self._sparse_keys.add(key)
        while dense_keys in self._sparse_keys:
            self._sparse_keys.remove(dense_keys)
            dense_keys += 1
        return dense_keys

    def _undefined_memo_error(self, position: int, key: int, dense_keys: int) -> BinFileError:
        if key < dense_keys or key in self._sparse_keys:
            raise AssertionError(f"byte {position}: memo entry {key} was stored but not kept")
        return self._error(position, f"invalid pickle: memo entry {key} is not defined")

    def _proto(self, arg: object, position: int) -> None:
        assert isinstance(arg, int)  # pickletools decodes the protocol as an int
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

    def _list_on_top(self, position: int) -> PickleList:
        target = self._top(position)
        if not isinstance(target, PickleList):
            raise self._error(position, f"APPEND to {describe_value(target)}, expected a list")
        return target

    # Strings and bytes.

    def _read_length(self, code: int, position: int) -> tuple[int, int]:
        """Return the start and length of the data of the string opcode at `position`."""
        field, field_size = LENGTH_FIELDS[code]
        reader = self._reader
        header = position + 1 - reader.start
        if header >= 0 and header + field_size <= len(reader.buffer):
            (length,) = struct.unpack_from(field, reader.buffer, header)
        else:
            data = reader.read_at(position + 1, field_size)
            if len(data) < field_size:
                raise self._invalid(position)
            (length,) = struct.unpack(field, data)
        start = position + 1 + field_size
        if length < 0 or length > sys.maxsize or start + length > reader.size:
            raise self._invalid(position)
        return start, length

    def _read_bytes(self, code: int, position: int) -> tuple[BytesSpan, int]:
        # Only the first bytes of a long value are read: the rest is hashed
        # when the window moves past it, never copied into an object.
        start, length = self._read_length(code, position)
        if length <= SHORT_VALUE_SIZE:
            value = self._reader.read_at(start, length)
            span = BytesSpan(
                start, length, length, RAW, value[:HEAD_SIZE], value, _BYTES_ORIGINS[code]
            )
        else:
            head = self._reader.read_at(start, HEAD_SIZE)
            span = BytesSpan(start, length, length, RAW, head, None, _BYTES_ORIGINS[code])
        return span, start + length

    def _read_text(self, code: int, position: int) -> tuple[TextSpan, int]:
        # Text is decoded whole, because invalid UTF-8 must be rejected.
        start, length = self._read_length(code, position)
        data = self._reader.read_at(start, length)
        try:
            text = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self._invalid(position) from None
        try:
            latin1_head: bytes | None = text.encode("latin-1")[:HEAD_SIZE]
        except UnicodeEncodeError:
            latin1_head = None
        value = text if len(text) <= SHORT_VALUE_SIZE else None
        return TextSpan(start, length, len(text), value, latin1_head), start + length

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
        stack = self._stack
        if len(stack) - (self._marks[-1] if self._marks else 0) < 2:
            raise self._empty_stack_error(position)
        args = stack.pop()
        function = stack.pop()
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
            # Identity is equality here: AllowedGlobals exist only in ALLOWED_GLOBALS.
            if not args or args[0] is not _NDARRAY:
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
        stack = self._stack
        if len(stack) - (self._marks[-1] if self._marks else 0) < 2:
            raise self._empty_stack_error(position)
        state = stack.pop()
        target = stack[-1]
        try:
            if isinstance(target, NumpyArray):
                set_array_state(target, state)
            elif isinstance(target, NumpyDtype):
                set_dtype_state(target, state)
            else:
                raise UnsupportedValue(f"BUILD on {describe_value(target)} is not allowed")
        except UnsupportedValue as exc:
            raise self._error(position, str(exc)) from None
