"""Tests of PickleList: images and labels stored in arrays, everything else kept as is."""

from __future__ import annotations

from binconv.pickle_list import ImageRecord, PickleList
from binconv.pickle_numpy import NumpyArray, NumpyDtype
from binconv.pickle_values import LATIN1_TEXT, RAW, BytesSpan, describe_value

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01"


def image_span(offset: int, size: int, origin: str = "bytes") -> BytesSpan:
    return BytesSpan(offset, size, size, RAW, JPEG_HEAD, None, origin)


def test_list_stores_images_as_records() -> None:
    text_image = BytesSpan(900, 7000, 5000, LATIN1_TEXT, JPEG_HEAD, None, "bytes")
    array = NumpyArray((3000, 1), NumpyDtype("u1"), image_span(5000, 3000))
    items = PickleList([image_span(10, 400), image_span(500, 300, "py2-str"), text_image, array])

    assert list(items) == [
        ImageRecord("bytes", 10, 400, 400, RAW),
        ImageRecord("py2-str", 500, 300, 300, RAW),
        ImageRecord("bytes", 900, 7000, 5000, LATIN1_TEXT),
        ImageRecord("numpy", 5000, 3000, 3000, RAW),
    ]
    assert items.objects == {}
    assert list(items.offsets) == [10, 500, 900, 5000]
    assert list(items.sizes) == [400, 300, 5000, 3000]


def test_list_keeps_labels_and_other_values() -> None:
    not_an_image = BytesSpan(0, 3, 3, RAW, b"abc", b"abc", "bytes")
    wrong_dtype = NumpyArray((10,), NumpyDtype("f4"), image_span(0, 40))
    huge = 2**70
    values: list[object] = [True, False, 0, 1, -5, huge, None, not_an_image, wrong_dtype, (1, 2)]

    items = PickleList(values)

    assert list(items) == values
    assert [type(item) for item in items] == [type(value) for value in values]
    assert set(items.objects) == {5, 6, 7, 8, 9}


def test_list_append_and_index() -> None:
    items = PickleList()
    items.append(image_span(1, 2000))
    items.extend([True, 7])

    assert len(items) == 3
    assert items[0] == ImageRecord("bytes", 1, 2000, 2000, RAW)
    assert items[-1] == 7
    assert items[1] is True


def test_list_describes_itself_as_a_list() -> None:
    items = PickleList(
        [False, image_span(0, 1200), NumpyArray((1200,), NumpyDtype("u1"), image_span(0, 1200))]
    )

    assert describe_value(items) == "a list of 3 items"
    assert describe_value(items[1]) == "1200 bytes"
    assert describe_value(items[2]) == "a NumpyArray"
    assert repr(PickleList([1, True])) == "[1, True]"
