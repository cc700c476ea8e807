"""The pickle opcodes that a `.bin` file may use, their argument layouts, and a memo pre-scan.

The names and byte values are the `pickle` module's. `ALLOWED_OPCODES` is
the single list that both the interpreter in `safepickle` and
`collect_memo_references` follow: every other opcode is rejected.
"""

from __future__ import annotations

import pickle
import pickletools
import struct

from .hashing_reader import MAX_LINE, HashingReader

__all__ = [
    "ALLOWED_OPCODES",
    "FIXED_ARGUMENT_SIZES",
    "LENGTH_FIELDS",
    "OPCODES_BY_BYTE",
    "SCAN_MARGIN",
    "collect_memo_references",
]

# Opcodes for tuples, lists, ints, bools, None, strings, bytes, the memo,
# globals and the calls that NumPy arrays and Python 3 bytes need.
ALLOWED_OPCODES = frozenset(
    {
        "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
        "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "LONG4",
        "SHORT_BINSTRING", "BINSTRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
        "BYTEARRAY8", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
        "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
        "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
        "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET",
        "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
    }
)  # fmt: skip

# pickletools' description of each opcode, by its byte value.
OPCODES_BY_BYTE = {ord(opcode.code): opcode for opcode in pickletools.opcodes}

# Allowed opcodes whose argument has a fixed size in bytes; a size of 0
# means no argument.
FIXED_ARGUMENT_SIZES = {
    pickle.PROTO[0]: 1,
    pickle.FRAME[0]: 8,
    pickle.BININT[0]: 4,
    pickle.BININT1[0]: 1,
    pickle.BININT2[0]: 2,
    pickle.BINPUT[0]: 1,
    pickle.LONG_BINPUT[0]: 4,
    pickle.BINGET[0]: 1,
    pickle.LONG_BINGET[0]: 4,
    **{
        getattr(pickle, name)[0]: 0
        for name in (
            "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE",
            "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
            "MEMOIZE", "STACK_GLOBAL", "REDUCE", "BUILD",
        )
    },
}  # fmt: skip

# Allowed opcodes whose argument is a length field followed by that many
# bytes: the little-endian struct format of the length field and its size.
LENGTH_FIELDS = {
    getattr(pickle, name)[0]: (field, struct.calcsize(field))
    for name, field in (
        ("SHORT_BINSTRING", "<B"),
        ("BINSTRING", "<i"),
        ("SHORT_BINBYTES", "<B"),
        ("BINBYTES", "<I"),
        ("BINBYTES8", "<Q"),
        ("BYTEARRAY8", "<Q"),
        ("SHORT_BINUNICODE", "<B"),
        ("BINUNICODE", "<I"),
        ("BINUNICODE8", "<Q"),
        ("LONG1", "<B"),
        ("LONG4", "<i"),
    )
}

# Bytes kept in the window ahead of each opcode, enough for any fixed
# argument, length field and short value (up to 256 bytes) without a bounds
# check.
SCAN_MARGIN = 512
_GLOBAL = pickle.GLOBAL[0]
_BINGET = pickle.BINGET[0]
_LONG_BINGET = pickle.LONG_BINGET[0]
# The size of each opcode with its fixed argument, indexed by opcode byte;
# 0 for the opcodes that collect_memo_references looks at more closely.
_STEP_BY_BYTE = [
    0 if code in (_BINGET, _LONG_BINGET) else 1 + FIXED_ARGUMENT_SIZES.get(code, -1)
    for code in range(256)
]


def collect_memo_references(reader: HashingReader) -> set[int]:
    """Return the memo indexes that BINGET and LONG_BINGET read, in one quick pass.

    The interpreter stores only these memo entries. `pickle.load` keeps every
    memoized value until the end, which for a `.bin` file means several
    records per image. The pass ends at STOP, at the end of the file, at an
    opcode that is not allowed or at a negative length field. The
    interpreter rejects the file there at the latest, so it never reaches a
    memo read after that point.
    """
    references: set[int] = set()
    unpack_from = struct.unpack_from
    buffer = reader.load(0, 2 * SCAN_MARGIN)
    base = reader.start
    position = 0
    limit = reader.scan_limit(SCAN_MARGIN)
    try:
        while True:
            if position > limit:
                buffer = reader.load(base + position, 2 * SCAN_MARGIN)
                base, position, limit = reader.start, 0, reader.scan_limit(SCAN_MARGIN)
            code = buffer[position]
            step = _STEP_BY_BYTE[code]
            if step:
                position += step
            elif code == _BINGET:
                references.add(buffer[position + 1])
                position += 2
            elif code == _LONG_BINGET:
                references.add(unpack_from("<I", buffer, position + 1)[0])
                position += 5
            elif code in LENGTH_FIELDS:
                field, field_size = LENGTH_FIELDS[code]
                (length,) = unpack_from(field, buffer, position + 1)
                if length < 0:
                    return references
                position += 1 + field_size + length
            elif code == _GLOBAL:
                position = _skip_global(reader, base + position) - base
            else:
                # STOP, or an opcode that the interpreter rejects.
                return references
    except (IndexError, struct.error, ValueError):
        return references


def _skip_global(reader: HashingReader, offset: int) -> int:
    """Return the offset after the GLOBAL opcode at `offset`, whose argument is "module\\nname\\n".

    Raises:
        ValueError: A line has no newline within MAX_LINE bytes.
    """
    data = reader.read_at(offset + 1, 2 * MAX_LINE)
    first = data.find(b"\n", 0, MAX_LINE)
    if first < 0:
        raise ValueError("GLOBAL argument without a newline after the module")
    second = data.find(b"\n", first + 1, first + 1 + MAX_LINE)
    if second < 0:
        raise ValueError("GLOBAL argument without a newline after the name")
    return offset + 1 + second + 1
