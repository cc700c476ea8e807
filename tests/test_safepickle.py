"""Safety rules of the restricted pickle interpreter: opcode by opcode, and under mutation.

These tests pin down what `read_bin_index` accepts independently of how the
interpreter is built, so that a faster rewrite cannot widen it unnoticed.
"""

from __future__ import annotations

import functools
import io
import pickle
import pickletools
import random
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binconv.binfile import iter_bin_pairs, read_bin_index
from binconv.errors import BinFileError
from binconv.pickle_opcodes import (
    ALLOWED_OPCODES,
    FIXED_ARGUMENT_SIZES,
    LENGTH_FIELDS,
    OPCODES_BY_BYTE,
)
from binconv.safepickle import ALLOWED_GLOBALS
from tests.binbuilder import malicious_bin, write_bin, write_numpy1_bin, write_py2_bin

try:
    from numpy.exceptions import VisibleDeprecationWarning
except ImportError:  # NumPy before 1.25 defines it at the top level
    from numpy import VisibleDeprecationWarning  # type: ignore[attr-defined,no-redef]

JPEG_MAGIC = b"\xff\xd8\xff\xe0"

# Written out in full, so that adding an opcode to the interpreter needs a
# deliberate change here too.
EXPECTED_ALLOWED_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
    "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "LONG4",
    "SHORT_BINSTRING", "BINSTRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
    "BYTEARRAY8", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
    "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
    "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
}  # fmt: skip

# A well-formed argument for each pickletools argument type whose size is
# not fixed by a count; length fields are zero.
_LINE_ARGUMENTS = {
    "decimalnl_short": b"0\n",
    "decimalnl_long": b"0L\n",
    "floatnl": b"0.0\n",
    "stringnl": b"'a'\n",
    "stringnl_noescape": b"a\n",
    "stringnl_noescape_pair": b"a\nb\n",
    "unicodestringnl": b"a\n",
}
_LENGTH_PREFIX_SIZES = {
    pickletools.TAKEN_FROM_ARGUMENT1: 1,
    pickletools.TAKEN_FROM_ARGUMENT4: 4,
    pickletools.TAKEN_FROM_ARGUMENT4U: 4,
    pickletools.TAKEN_FROM_ARGUMENT8U: 8,
}


def sample_argument(opcode: pickletools.OpcodeInfo) -> bytes:
    """Return bytes that `pickletools` decodes as a valid argument of `opcode`."""
    arg = opcode.arg
    if arg is None:
        return b""
    if arg.n >= 0:
        return bytes(arg.n)
    if arg.n == pickletools.UP_TO_NEWLINE:
        return _LINE_ARGUMENTS[arg.name]
    return bytes(_LENGTH_PREFIX_SIZES[arg.n])


def read_pairs(path: Path) -> list[tuple[bytes, bytes, bool]]:
    index = read_bin_index(path)
    return [(pair.img1, pair.img2, pair.issame) for pair in iter_bin_pairs(index)]


def test_allowed_opcodes_are_exactly_the_expected() -> None:
    assert set(ALLOWED_OPCODES) == EXPECTED_ALLOWED_OPCODES


def test_prescan_tables_match_allowed_opcodes() -> None:
    fixed = {OPCODES_BY_BYTE[code].name for code in FIXED_ARGUMENT_SIZES}
    prefixed = {OPCODES_BY_BYTE[code].name for code in LENGTH_FIELDS}

    assert fixed | prefixed | {"GLOBAL", "STOP"} == EXPECTED_ALLOWED_OPCODES
    assert not fixed & prefixed
    for code, size in FIXED_ARGUMENT_SIZES.items():
        arg = OPCODES_BY_BYTE[code].arg
        assert size == (0 if arg is None else arg.n), OPCODES_BY_BYTE[code].name
    for code, (_, field_size) in LENGTH_FIELDS.items():
        arg = OPCODES_BY_BYTE[code].arg
        assert arg is not None
        assert field_size == _LENGTH_PREFIX_SIZES[arg.n], OPCODES_BY_BYTE[code].name


@pytest.mark.parametrize(
    "opcode",
    [opcode for opcode in pickletools.opcodes if opcode.name not in EXPECTED_ALLOWED_OPCODES],
    ids=lambda opcode: opcode.name,
)
def test_forbidden_opcode_rejected(tmp_path: Path, opcode: pickletools.OpcodeInfo) -> None:
    path = tmp_path / "op.bin"
    path.write_bytes(b"\x80\x02" + opcode.code.encode("latin-1") + sample_argument(opcode) + b".")

    with pytest.raises(BinFileError, match=rf"op\.bin: byte 2: pickle opcode {opcode.name} is not"):
        read_bin_index(path)


@pytest.mark.parametrize(
    "opcode",
    [opcode for opcode in pickletools.opcodes if opcode.name in EXPECTED_ALLOWED_OPCODES],
    ids=lambda opcode: opcode.name,
)
def test_allowed_opcode_not_rejected_as_opcode(
    tmp_path: Path, opcode: pickletools.OpcodeInfo
) -> None:
    path = tmp_path / "op.bin"
    path.write_bytes(b"\x80\x02" + opcode.code.encode("latin-1") + sample_argument(opcode) + b".")

    # The file is still invalid (a lone opcode is no (images, issame) pair),
    # but never because of the opcode itself.
    with pytest.raises(BinFileError) as caught:
        read_bin_index(path)
    assert "pickle opcode" not in str(caught.value)


def test_unknown_opcode_bytes_rejected(tmp_path: Path) -> None:
    path = tmp_path / "op.bin"
    unknown = [code for code in range(256) if code not in OPCODES_BY_BYTE]
    assert unknown  # pickle protocol 5 leaves many byte values unused
    for code in unknown:
        path.write_bytes(b"\x80\x02" + bytes([code]) + b".")

        with pytest.raises(BinFileError) as caught:
            read_bin_index(path)
        expected = f"near byte 3 (at position 2, opcode {bytes([code])!r} unknown)"
        assert expected in str(caught.value)


def test_malicious_global_after_many_images(tmp_path: Path) -> None:
    # The forbidden call comes after 3 MB of images, well past the reader's first window.
    marker = tmp_path / "pwned"
    images = pickle.dumps([JPEG_MAGIC + bytes(1000) + bytes([i % 256]) for i in range(3000)], 2)
    evil = malicious_bin(tmp_path / "evil.bin", marker).read_bytes()
    # Drop the first file's STOP and the second file's PROTO: one pickle that
    # pushes the images list, then runs the malicious REDUCE.
    path = tmp_path / "evil_late.bin"
    path.write_bytes(images[:-1] + evil[2:])

    with pytest.raises(BinFileError, match=r"byte \d{7}: forbidden global posix\.system"):
        read_bin_index(path)
    assert not marker.exists()


def test_second_build_on_array_rejected(tmp_path: Path) -> None:
    data = pickle.dumps(np.frombuffer(JPEG_MAGIC + bytes(300), dtype=np.uint8), protocol=2)
    opcodes = list(pickletools.genops(data))
    # The memo index of the array's state: the BINPUT just before the last BUILD.
    build = max(i for i, (opcode, _, _) in enumerate(opcodes) if opcode.name == "BUILD")
    state_put = opcodes[build - 1]
    assert state_put[0].name == "BINPUT"
    path = tmp_path / "twice.bin"
    path.write_bytes(data[:-1] + pickle.BINGET + bytes([state_put[1]]) + pickle.BUILD + b".")

    with pytest.raises(BinFileError, match="BUILD on a NumPy array that already has data"):
        read_bin_index(path)


# Mutation: files of every form, with opcodes deleted, repeated, swapped or
# inserted. Whatever the reader accepts must be what pickle itself loads when
# it may only use the same allowed globals.


class AllowListUnpickler(pickle.Unpickler):
    """The standard unpickler, limited to the globals that the safe reader interprets."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, np.ndarray):
        return value.tobytes()
    if isinstance(value, str):  # a Python 2 string, loaded with encoding="latin1"
        return value.encode("latin-1")
    assert isinstance(value, bytes)
    return value


def load_with_pickle(data: bytes) -> list[tuple[bytes, bytes, bool]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core names
        # Mutants call numpy.dtype with odd arguments, which NumPy 2.4 warns about.
        warnings.simplefilter("ignore", VisibleDeprecationWarning)
        images, labels = AllowListUnpickler(io.BytesIO(data), encoding="latin1").load()
    assert len(images) == 2 * len(labels)
    return [
        (_as_bytes(images[2 * i]), _as_bytes(images[2 * i + 1]), bool(labels[i]))
        for i in range(len(labels))
    ]


def _opcode_chunks(data: bytes) -> list[bytes]:
    return [data[start:end] for _, _, start, end in pickletools._genops(data, yield_end_pos=True)]


def without_frames(data: bytes) -> bytes:
    """Remove FRAME opcodes, whose lengths pickle checks but binconv, like pickletools, ignores."""
    return b"".join(chunk for chunk in _opcode_chunks(data) if chunk[:1] != pickle.FRAME)


_INSERTED_OPCODES = [
    *(pickle.BINPUT + bytes([i]) for i in range(0, 40, 3)),
    *(pickle.BINGET + bytes([i]) for i in range(40)),
    pickle.LONG_BINPUT + struct.pack("<I", 300),
    pickle.LONG_BINGET + struct.pack("<I", 300),
    pickle.MEMOIZE,
    pickle.DUP,
    pickle.POP,
    pickle.POP_MARK,
    pickle.MARK,
    pickle.LIST,
    pickle.EMPTY_LIST,
    pickle.APPEND,
    pickle.APPENDS,
    pickle.TUPLE,
    pickle.TUPLE1,
    pickle.TUPLE2,
    pickle.TUPLE3,
    pickle.REDUCE,
    pickle.BUILD,
    pickle.NEWTRUE,
    pickle.BININT1 + b"\x01",
    pickle.STACK_GLOBAL,
    pickle.FRAME + bytes(8),
]


@functools.cache
def seed_files() -> tuple[bytes, ...]:
    """Return small valid files of every form (cached: hypothesis calls the test many times)."""
    images = [JPEG_MAGIC + bytes([i]) * (5 + 90 * i) for i in range(6)]
    issame = [True, False, True]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seed.bin"
        files = [
            write_bin(path, images, issame, protocol=protocol, images_as=form).read_bytes()
            for protocol in (2, 3, 4, 5)
            for form in ("bytes", "numpy-n1")
        ]
        files.append(write_bin(path, images, issame, issame_as="numpy-array").read_bytes())
        files.append(write_py2_bin(path, images, issame).read_bytes())
        files.append(write_numpy1_bin(path, images, issame, python2=True).read_bytes())
    return tuple(files)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Delete, repeat, swap or insert a few whole opcodes of `data`, never the first."""
    chunks = _opcode_chunks(data)
    for _ in range(rng.choice([1, 2, 3, 5])):
        at = rng.randrange(1, len(chunks))
        action = rng.randrange(4)
        if action == 0:
            del chunks[at]
        elif action == 1:
            chunks.insert(at, chunks[rng.randrange(1, len(chunks))])
        elif action == 2:
            other = rng.randrange(1, len(chunks))
            chunks[at], chunks[other] = chunks[other], chunks[at]
        else:
            chunks.insert(at, rng.choice(_INSERTED_OPCODES))
    return b"".join(chunks)


# Errors that NumPy raises for array and dtype states that binconv accepts:
# binconv checks shape, dtype and data size, but not, for example, a dtype
# state's version field or the type of _reconstruct's other arguments.
_NUMPY_STATE_ERRORS = (TypeError, ValueError, SystemError, RuntimeError)


# NumPy reports an internal error while freeing some dtypes whose mutated
# state it rejected; that comes from the reference, not from binconv.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=1000, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_accepted_mutants_load_the_same_with_pickle(seed: int) -> None:
    # About one mutant in ten is accepted; any other error than BinFileError fails the test.
    rng = random.Random(seed)
    data = mutate(rng.choice(seed_files()), rng)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutant.bin"
        path.write_bytes(data)
        try:
            ours = read_pairs(path)
        except BinFileError:
            return  # rejecting more than pickle would is allowed
    try:
        theirs = load_with_pickle(without_frames(data))
    except _NUMPY_STATE_ERRORS:
        return
    assert ours == theirs
