"""Property test: any valid `.bin` converts to shards that hold exactly its pairs."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import webdataset as wds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binconv.convert import convert_bins
from tests.binbuilder import IMAGE_FORMS, ISSAME_FORMS, write_bin, write_py2_bin

# Every image starts with a real magic number; the rest is arbitrary, because
# conversion must copy image bytes without looking past the signature.
EXTENSIONS = {
    b"\xff\xd8\xff": "jpg",
    b"\x89PNG\r\n\x1a\n": "png",
    b"GIF89a": "gif",
    b"BM": "bmp",
    b"II*\x00": "tiff",
}

images = st.builds(
    lambda magic, tail: magic + tail, st.sampled_from(list(EXTENSIONS)), st.binary(max_size=600)
)
pair_lists = st.lists(st.tuples(images, images, st.booleans()), min_size=1, max_size=12)
forms = st.one_of(
    st.tuples(
        st.integers(min_value=2, max_value=5),
        st.sampled_from(IMAGE_FORMS),
        st.sampled_from(ISSAME_FORMS),
        st.booleans(),
    ),
    st.just("python2"),
)


def expected_extension(image: bytes) -> str:
    return next(ext for magic, ext in EXTENSIONS.items() if image.startswith(magic))


def read_with_tarfile(shards: list[Path]) -> list[tuple[str, bytes]]:
    members = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar:
                data = tar.extractfile(member)
                assert data is not None
                members.append((member.name, data.read()))
    return members


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=pair_lists, form=forms, pairs_per_shard=st.integers(min_value=1, max_value=5))
def test_roundtrip_random_pairs(
    pairs: list[tuple[bytes, bytes, bool]], form: object, pairs_per_shard: int
) -> None:
    flat = [image for img1, img2, _ in pairs for image in (img1, img2)]
    labels = [same for _, _, same in pairs]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if form == "python2":
            source = write_py2_bin(root / "rand.bin", flat, labels)
        else:
            protocol, images_as, issame_as, as_list = form  # type: ignore[misc]
            source = write_bin(
                root / "rand.bin",
                flat,
                labels,
                protocol=protocol,
                images_as=images_as,
                issame_as=issame_as,
                as_list=as_list,
            )

        [result] = convert_bins([source], str(root / "out"), pairs_per_shard=pairs_per_shard)
        shards = [root / "out" / "rand" / shard.url for shard in result.manifest.shards]

        expected_members = []
        for index, (img1, img2, same) in enumerate(pairs):
            key = f"{index:06d}"
            expected_members += [
                (f"{key}.img1.{expected_extension(img1)}", img1),
                (f"{key}.img2.{expected_extension(img2)}", img2),
                (f"{key}.issame.cls", b"1" if same else b"0"),
            ]
        assert read_with_tarfile(shards) == expected_members

        dataset = wds.WebDataset([str(s) for s in shards], shardshuffle=False)
        samples = list(dataset)
        assert [sample["__key__"] for sample in samples] == [f"{i:06d}" for i in range(len(pairs))]
        for sample, (img1, img2, same) in zip(samples, pairs, strict=True):
            assert sample[f"img1.{expected_extension(img1)}"] == img1
            assert sample[f"img2.{expected_extension(img2)}"] == img2
            assert sample["issame.cls"] == (b"1" if same else b"0")
