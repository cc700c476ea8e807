"""Tests of the safe `.bin` reader: every form found in the wild, and every bad input."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from binconv.binfile import iter_bin_pairs, read_bin_index
from binconv.errors import BinFileError
from tests.binbuilder import (
    IMAGE_FORMS,
    ISSAME_FORMS,
    OpcodeWriter,
    alternating_issame,
    face_jpegs,
    face_png,
    gray_jpeg,
    malicious_bin,
    write_bin,
    write_numpy1_bin,
    write_py2_bin,
)

JPEG_MAGIC = b"\xff\xd8\xff\xe0"


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return face_jpegs(8)


def read_all(path: Path) -> tuple[list[bytes], list[bool]]:
    """Read a .bin with the safe reader and return its images and labels."""
    index = read_bin_index(path)
    images: list[bytes] = []
    labels: list[bool] = []
    for pair in iter_bin_pairs(index):
        images += [pair.img1, pair.img2]
        labels.append(pair.issame)
    return images, labels


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("images_as", IMAGE_FORMS)
@pytest.mark.parametrize("issame_as", ISSAME_FORMS)
def test_reader_python3_forms(
    tmp_path: Path, images: list[bytes], protocol: int, images_as: str, issame_as: str
) -> None:
    issame = [True, False, False, True]
    path = write_bin(
        tmp_path / "x.bin",
        images,
        issame,
        protocol=protocol,
        images_as=images_as,
        issame_as=issame_as,
    )

    index = read_bin_index(path)
    read_images, read_labels = read_all(path)

    assert read_images == images
    assert read_labels == issame
    assert index.pickle_protocol == protocol
    assert index.image_container == ("bytes" if images_as == "bytes" else "numpy")
    assert index.num_positive == 2


def test_reader_list_instead_of_tuple(tmp_path: Path, images: list[bytes]) -> None:
    path = write_bin(tmp_path / "x.bin", images, [True, False, True, True], as_list=True)

    assert read_all(path) == (images, [True, False, True, True])


def test_reader_python2_cpickle_file(tmp_path: Path, images: list[bytes]) -> None:
    path = write_py2_bin(tmp_path / "py2.bin", images, [False, True, True, False])

    index = read_bin_index(path)

    assert read_all(path) == (images, [False, True, True, False])
    assert index.pickle_protocol == 2
    assert index.image_container == "py2-str"
    # The hand-written file must also be what real pickle reads as Python 2 data.
    loaded_images, loaded_labels = pickle.loads(path.read_bytes(), encoding="bytes")
    assert loaded_images == images
    assert loaded_labels == [False, True, True, False]


def test_reader_python2_many_batches(tmp_path: Path) -> None:
    # Over 1,000 images make several APPENDS batches and over 256 memo
    # entries make LONG_BINPUT, as cPickle writes for full-size sets.
    fake_images = [JPEG_MAGIC + i.to_bytes(4, "big") * 70 for i in range(2100)]
    issame = alternating_issame(1050)
    path = write_py2_bin(tmp_path / "big.bin", fake_images, issame)

    assert read_all(path) == (fake_images, issame)


@pytest.mark.parametrize("python2", [True, False], ids=["python2", "python3"])
def test_reader_numpy1_reconstruct_file(tmp_path: Path, images: list[bytes], python2: bool) -> None:
    path = write_numpy1_bin(
        tmp_path / "np1.bin", images, [True, True, False, True], python2=python2
    )

    index = read_bin_index(path)

    assert read_all(path) == (images, [True, True, False, True])
    assert index.image_container == "numpy"
    assert index.pickle_protocol == (2 if python2 else 3)


def test_reader_png_gray_and_other_sizes(tmp_path: Path) -> None:
    mixed = [face_png(1), gray_jpeg(2), face_jpegs(1, size=(96, 112))[0], face_png(3, (250, 250))]
    path = write_bin(tmp_path / "mixed.bin", mixed, [True, False], images_as="numpy-n1")

    assert read_all(path) == (mixed, [True, False])


def test_reader_real_small_lfw(small_lfw_bin: Path) -> None:
    index = read_bin_index(small_lfw_bin)
    read_images, read_labels = read_all(small_lfw_bin)
    # The file is trusted and known, so plain pickle may read it for comparison.
    with small_lfw_bin.open("rb") as f:
        arrays, labels = pickle.load(f, encoding="bytes")

    assert index.num_pairs == 10
    assert index.num_positive == 10
    assert index.pickle_protocol == 3
    assert index.image_container == "numpy"
    assert index.sha256 == hashlib.sha256(small_lfw_bin.read_bytes()).hexdigest()
    assert index.size == small_lfw_bin.stat().st_size
    assert read_images == [np.asarray(array).tobytes() for array in arrays]
    assert read_labels == [bool(label) for label in labels]


def test_reader_hashes_whole_file(tmp_path: Path, images: list[bytes], caplog) -> None:
    path = write_bin(tmp_path / "x.bin", images, [True] * 4)
    path.write_bytes(path.read_bytes() + b"trailing junk")

    with caplog.at_level(logging.WARNING):
        index = read_bin_index(path)

    assert index.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "ignoring 13 bytes" in caplog.text
    assert read_all(path)[0] == images


def test_reader_memoized_image_repeats(tmp_path: Path, images: list[bytes]) -> None:
    # pickle writes a second reference to the same object as BINGET.
    same = images[0]
    path = tmp_path / "memo.bin"
    path.write_bytes(pickle.dumps(([same, same, images[1], same], [True, False]), protocol=4))

    assert read_all(path) == ([same, same, images[1], same], [True, False])


# Bad input: each case gets a BinFileError that names the file.


def test_reader_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BinFileError, match=r"missing\.bin: file not found"):
        read_bin_index(tmp_path / "missing.bin")


def test_reader_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(BinFileError, match="is a folder"):
        read_bin_index(tmp_path)


def test_reader_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")

    with pytest.raises(BinFileError, match=r"empty\.bin: the file is empty"):
        read_bin_index(path)


@pytest.mark.parametrize(
    "content",
    [b"hello, this is text\n", JPEG_MAGIC + b"\x00" * 100, b"\x00\x01\x02"],
    ids=["text", "jpeg", "binary"],
)
def test_reader_not_a_pickle(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.bin"
    path.write_bytes(content)

    with pytest.raises(BinFileError, match=r"other\.bin: .*not a pickle"):
        read_bin_index(path)


@pytest.mark.parametrize("protocol", [0, 1])
def test_reader_old_protocols_rejected(tmp_path: Path, images: list[bytes], protocol: int) -> None:
    path = tmp_path / "old.bin"
    path.write_bytes(pickle.dumps((images, [True] * 4), protocol=protocol))

    with pytest.raises(BinFileError, match="protocol 2 or later"):
        read_bin_index(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, -1])
def test_reader_truncated_file(tmp_path: Path, images: list[bytes], keep: float) -> None:
    data = write_bin(tmp_path / "full.bin", images, [True] * 4).read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:-1])

    with pytest.raises(BinFileError, match=r"cut\.bin: the file is truncated"):
        read_bin_index(path)


def test_reader_huge_declared_length(tmp_path: Path) -> None:
    # A BINBYTES8 that claims 1 TiB must fail fast, not try to allocate it.
    path = tmp_path / "huge.bin"
    path.write_bytes(pickle.PROTO + b"\x04" + b"\x8e" + struct.pack("<Q", 1 << 40) + b"abc")

    with pytest.raises(BinFileError, match="truncated"):
        read_bin_index(path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"images": []}, "pickle opcode EMPTY_DICT is not allowed"),
        ((["a"], [True], [1]), r"expected a pickle of \(images, issame\), found a tuple of 3"),
        (42, r"found the int 42"),
        ((b"\xff\xd8\xff", [True]), r"images is 3 bytes, expected a list"),
        (([b"x", b"y"], True), r"issame is the bool True, expected a list"),
        (([b"x", b"y"], {1}), "EMPTY_SET is not allowed"),
        (([1.5, 2.5], [True]), "BINFLOAT is not allowed"),
    ],
    ids=["dict", "triple", "int", "images-bytes", "issame-bool", "set", "floats"],
)
def test_reader_wrong_structure(tmp_path: Path, value: object, message: str) -> None:
    path = tmp_path / "wrong.bin"
    path.write_bytes(pickle.dumps(value, protocol=4))

    with pytest.raises(BinFileError, match=rf"wrong\.bin: .*{message}"):
        read_bin_index(path)


def test_reader_odd_number_of_images(tmp_path: Path, images: list[bytes]) -> None:
    path = write_bin(tmp_path / "odd.bin", images[:7], [True] * 3)

    with pytest.raises(BinFileError, match=r"odd\.bin: the file has an odd number of images \(7\)"):
        read_bin_index(path)


def test_reader_issame_length_mismatch(tmp_path: Path, images: list[bytes]) -> None:
    path = write_bin(tmp_path / "short.bin", images, [True] * 3)

    with pytest.raises(BinFileError, match=r"8 images make 4 pairs, but issame has 3 entries"):
        read_bin_index(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (b"not an image at all", r"pair 2: img2 \(image 5\) is not an encoded image"),
        (b"", r"pair 2: img2 \(image 5\) is not an encoded image \(first bytes , 0 bytes\)"),
        (7, r"pair 2: img2 \(image 5\) is the int 7, expected encoded image bytes"),
        ("text", r"pair 2: img2 \(image 5\) is a string of 4 characters"),
        (np.zeros(3, dtype=np.float32), r"pair 2: img2 .*dtype f4 and shape \(3,\)"),
        (np.zeros((4, 4), dtype=np.uint8), r"pair 2: img2 .*shape \(4, 4\)"),
    ],
    ids=["random-bytes", "empty", "int", "str", "float-array", "2d-array"],
)
def test_reader_entry_not_an_image(
    tmp_path: Path, images: list[bytes], entry: object, message: str
) -> None:
    entries: list[object] = list(images)
    entries[5] = entry
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps((entries, [True] * 4), protocol=4))

    with pytest.raises(BinFileError, match=rf"bad\.bin.*{message}"):
        read_bin_index(path)


@pytest.mark.parametrize("label", [2, -1, "yes", None], ids=["two", "minus-one", "str", "none"])
def test_reader_invalid_issame_entry(tmp_path: Path, images: list[bytes], label: object) -> None:
    path = tmp_path / "labels.bin"
    path.write_bytes(pickle.dumps((images, [True, False, label, True]), protocol=4))

    with pytest.raises(
        BinFileError, match=r"labels\.bin: pair 2: issame is .*expected a bool or 0/1"
    ):
        read_bin_index(path)


def test_reader_issame_array_of_other_values(tmp_path: Path, images: list[bytes]) -> None:
    path = tmp_path / "labels.bin"
    path.write_bytes(pickle.dumps((images, np.array([1, 0, 1, 5], dtype=np.int64)), protocol=4))

    with pytest.raises(BinFileError, match=r"pair 3: issame is the int 5"):
        read_bin_index(path)


def test_reader_malicious_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_bin(tmp_path / "evil.bin", marker)

    with pytest.raises(BinFileError, match=r"evil\.bin: byte 2: forbidden global posix\.system"):
        read_bin_index(path)
    assert not marker.exists()


def test_reader_malicious_stack_global(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_bin(tmp_path / "evil.bin", marker, stack_global=True)

    with pytest.raises(BinFileError, match=r"forbidden global posix\.system"):
        read_bin_index(path)
    assert not marker.exists()


def test_malicious_fixture_runs_under_pickle(tmp_path: Path) -> None:
    # Proves the file above is really harmful: plain pickle runs its command.
    marker = tmp_path / "pwned"
    path = malicious_bin(tmp_path / "evil.bin", marker)

    pickle.loads(path.read_bytes())

    assert marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "eval"), ("os", "system"), ("subprocess", "Popen"), ("numpy", "load")],
)
def test_reader_forbidden_globals(tmp_path: Path, module: str, name: str) -> None:
    writer = OpcodeWriter(2).global_(module, name).unicode("1").raw(pickle.TUPLE1)
    path = tmp_path / "global.bin"
    path.write_bytes(writer.raw(pickle.REDUCE).getvalue())

    with pytest.raises(BinFileError, match=rf"forbidden global {module}\.{name}"):
        read_bin_index(path)


def test_reader_rejects_calling_ndarray(tmp_path: Path) -> None:
    # An allowed global may only be used in the way NumPy's own pickles use it.
    writer = OpcodeWriter(2).global_("numpy", "ndarray").raw(pickle.EMPTY_TUPLE)
    path = tmp_path / "call.bin"
    path.write_bytes(writer.raw(pickle.REDUCE).getvalue())

    with pytest.raises(BinFileError, match=r"calling numpy\.ndarray is not allowed"):
        read_bin_index(path)


def test_reader_rejects_out_of_band_buffers(tmp_path: Path, images: list[bytes]) -> None:
    arrays = [np.frombuffer(image, dtype=np.uint8) for image in images]
    buffers: list[pickle.PickleBuffer] = []
    path = tmp_path / "oob.bin"
    path.write_bytes(pickle.dumps((arrays, [True] * 4), protocol=5, buffer_callback=buffers.append))

    with pytest.raises(BinFileError, match="NEXT_BUFFER is not allowed"):
        read_bin_index(path)


def test_reader_detects_file_changed_after_index(tmp_path: Path, images: list[bytes]) -> None:
    path = write_bin(tmp_path / "x.bin", images, [True] * 4)
    index = read_bin_index(path)
    with path.open("ab") as f:
        f.write(b"more")

    with pytest.raises(BinFileError, match=r"x\.bin: the file changed"):
        list(iter_bin_pairs(index))


def test_reader_does_not_use_pickle_load(tmp_path: Path, images: list[bytes], monkeypatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the reader must not call pickle loaders")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    path = write_bin(tmp_path / "x.bin", images, [True] * 4, images_as="numpy-n1")

    assert read_all(path)[0] == images


def test_index_holds_no_image_bytes(tmp_path: Path) -> None:
    big_images = [JPEG_MAGIC + os.urandom(50_000) for _ in range(20)]
    path = write_bin(tmp_path / "big.bin", big_images, [True] * 10)

    index = read_bin_index(path)

    # The index stores offsets, lengths and labels only: far below the 1 MB of images.
    stored = (
        len(index.image_offsets.tobytes())
        + len(index.image_lengths.tobytes())
        + len(index.image_sizes.tobytes())
        + len(index.image_encodings)
        + len(index.issame)
    )
    assert stored < 1000
    assert index.image_bytes == sum(len(image) for image in big_images)
