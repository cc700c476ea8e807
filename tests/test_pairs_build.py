"""Tests for building pair datasets from image folders and pair lists."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from PIL import Image

from binconv import imagecheck
from binconv.dataset_reader import iter_pairs, locate_dataset
from binconv.errors import BinconvError, ImageError, ManifestError, PairListError
from binconv.pairs_build import build_pairs_dataset

from .face_folders import FaceFolder, build_face_folder, lfw_name, lfw_path, other_name
from .progress_recorder import RecordingProgress


@pytest.fixture
def faces(shared_data: Path, tmp_path: Path) -> FaceFolder:
    return build_face_folder(shared_data, tmp_path / "input")


def read_back(dataset_dir: Path) -> list[tuple[bytes, bytes, bool]]:
    return [
        (pair.img1, pair.img2, pair.issame) for pair in iter_pairs(locate_dataset(str(dataset_dir)))
    ]


def test_lfw_pairs_keep_list_order(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", pairs_per_shard=6)

    assert result.written
    assert result.dataset_dir == str(out / "mylfw")
    assert read_back(out / "mylfw") == faces.lfw_expected
    manifest = result.manifest
    assert manifest.num_pairs == 20
    assert manifest.num_positive == 10
    assert manifest.num_negative == 10
    assert [shard.nsamples for shard in manifest.shards] == [6, 6, 6, 2]
    assert manifest.image_formats == {"jpg": 40}


def test_manifest_records_pair_list_source(faces: FaceFolder, tmp_path: Path) -> None:
    result = build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), "mylfw")

    data = faces.lfw_pairs.read_bytes()
    source = result.manifest.source
    assert source.kind == "pairs"
    assert source.name == "pairs.txt"
    assert source.size == len(data)
    assert source.sha256 == hashlib.sha256(data).hexdigest()
    expected_images = hashlib.sha256()
    for img1, img2, _ in faces.lfw_expected:
        expected_images.update(hashlib.sha256(img1).digest())
        expected_images.update(hashlib.sha256(img2).digest())
    assert source.images_sha256 == expected_images.hexdigest()
    manifest_json = json.loads((tmp_path / "out" / "mylfw" / "mylfw.json").read_text())
    assert manifest_json["source"]["images_sha256"] == expected_images.hexdigest()


def test_shards_read_by_webdataset(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = build_pairs_dataset(
        faces.lfw_pairs, faces.root, str(out), "mylfw", pairs_per_shard=8
    ).manifest
    urls = [str(out / "mylfw" / shard.url) for shard in manifest.shards]

    samples = list(wds.WebDataset(urls, shardshuffle=False))

    assert [sample["__key__"] for sample in samples] == [f"{index:06d}" for index in range(20)]
    got = [(s["img1.jpg"], s["img2.jpg"], s["issame.cls"]) for s in samples]
    expected = [(img1, img2, b"1" if same else b"0") for img1, img2, same in faces.lfw_expected]
    assert got == expected


def test_csv_with_png_keeps_types(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = build_pairs_dataset(faces.csv_pairs, faces.root, str(out), "mycsv")

    assert read_back(out / "mycsv") == faces.csv_expected
    assert result.manifest.image_formats == {"jpg": 38, "png": 2}
    with tarfile.open(out / "mycsv" / "mycsv-000000.tar") as tar:
        names = tar.getnames()
    assert "000018.img1.png" in names
    assert "000018.img2.jpg" in names
    assert result.manifest.num_positive == 10


def test_tsv_list_with_explicit_format(faces: FaceFolder, tmp_path: Path) -> None:
    rows = [line.split(",") for line in faces.csv_pairs.read_text().splitlines()]
    tsv = tmp_path / "pairs.list"
    tsv.write_text("".join("\t".join(field.strip() for field in row) + "\n" for row in rows))
    out = tmp_path / "out"

    build_pairs_dataset(tsv, faces.root, str(out), "mytsv", list_format="tsv")

    assert read_back(out / "mytsv") == faces.csv_expected


def test_lfw_extension_names_png_files(faces: FaceFolder, tmp_path: Path) -> None:
    for jpg in faces.root.glob("*/*_000?.jpg"):
        jpg.rename(jpg.with_suffix(".png"))
    out = tmp_path / "out"

    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", lfw_extension="png")

    # The files keep their JPEG bytes: the member extension follows the bytes.
    assert read_back(out / "mylfw") == faces.lfw_expected


def test_missing_images_are_all_listed(faces: FaceFolder, tmp_path: Path) -> None:
    removed = [lfw_path(lfw_name(3), 2), lfw_path(other_name(7), 1), lfw_path(lfw_name(9), 1)]
    for path in removed:
        (faces.root / path).unlink()
    out = tmp_path / "out"

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")

    assert caught.value.problems == (
        f"line 5: {lfw_path(lfw_name(3), 2)}: not found",
        f"line 16: {lfw_path(lfw_name(9), 1)}: not found",
        f"line 19: {lfw_path(other_name(7), 1)}: not found",
    )
    first_line = str(caught.value).splitlines()[0]
    assert first_line == (
        f"{faces.lfw_pairs} (images in {faces.root}): 3 problems found, nothing was written:"
    )
    assert not out.exists()


def test_images_checked_in_small_batches(
    faces: FaceFolder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 30 images in batches of 4: the last batch is partial, and problems
    # from several batches still come out in line order.
    monkeypatch.setattr(imagecheck, "_BATCH_SIZE", 4)
    removed = [lfw_path(lfw_name(9), 2), lfw_path(lfw_name(0), 1), lfw_path(other_name(9), 1)]
    for path in removed:
        (faces.root / path).unlink()

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), "mylfw")
    for path in removed:
        (faces.root / path).write_bytes(b"")
    with pytest.raises(PairListError) as empty:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), "mylfw")

    assert caught.value.problems == (
        f"line 2: {lfw_path(lfw_name(0), 1)}: not found",
        f"line 16: {lfw_path(lfw_name(9), 2)}: not found",
        f"line 21: {lfw_path(other_name(9), 1)}: not found",
    )
    assert len(empty.value.problems) == 3


def test_missing_images_listed_up_to_limit(faces: FaceFolder, tmp_path: Path) -> None:
    for image in faces.root.glob("Lfw_Person_*/*.jpg"):
        image.unlink()

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), "mylfw")

    assert len(caught.value.problems) == 20
    message = str(caught.value)
    assert message.count(": not found") == 20
    assert "... and" not in message


def test_bad_images_reported_together(faces: FaceFolder, tmp_path: Path) -> None:
    text_file = faces.root / lfw_path(lfw_name(0), 1)
    text_file.write_text("this is not an image\n")
    truncated = faces.root / lfw_path(lfw_name(1), 2)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    folder = faces.root / lfw_path(lfw_name(2), 1)
    folder.unlink()
    folder.mkdir()
    loop = faces.root / lfw_path(other_name(4), 1)
    loop.unlink()
    loop.symlink_to(loop.name)  # a link to itself: stat fails with ELOOP
    empty = faces.root / lfw_path(other_name(5), 1)
    empty.write_bytes(b"")
    out = tmp_path / "out"

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")

    problems = caught.value.problems
    assert len(problems) == 5
    assert problems[0].startswith(
        f"line 2: {lfw_path(lfw_name(0), 1)}: not an image file (first bytes 7468697320697320)"
    )
    assert problems[1].startswith(f"line 3: {lfw_path(lfw_name(1), 2)}: not a valid jpg image (")
    assert "truncated" in problems[1]
    assert problems[2] == f"line 17: {lfw_path(other_name(5), 1)}: the file is empty"
    assert problems[3] == f"line 4: {lfw_path(lfw_name(2), 1)}: is a folder, not an image file"
    assert problems[4].startswith(f"line 11: {lfw_path(other_name(4), 1)}: cannot be read (")
    assert not out.exists()


def test_png_with_bad_checksum_is_invalid(faces: FaceFolder, tmp_path: Path) -> None:
    png = faces.root / "png" / "other_00.png"
    data = bytearray(png.read_bytes())
    crc_end = data.index(b"IEND") - 4  # the last IDAT chunk's CRC ends where IEND's length starts
    data[crc_end - 1] ^= 0xFF
    png.write_bytes(bytes(data))
    with Image.open(png) as image:
        image.load()  # a plain decode does not notice

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.csv_pairs, faces.root, str(tmp_path / "out"), "mycsv")

    (problem,) = caught.value.problems
    assert problem.startswith("line 20: png/other_00.png: not a valid png image (")
    assert "checksum" in problem


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_file_without_read_permission(faces: FaceFolder, tmp_path: Path) -> None:
    image = faces.root / lfw_path(lfw_name(0), 1)
    image.chmod(0)

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), "mylfw")

    assert caught.value.problems == (
        f"line 2: {lfw_path(lfw_name(0), 1)}: cannot be read (Permission denied)",
    )


def test_list_and_image_problems_together(faces: FaceFolder, tmp_path: Path) -> None:
    lines = faces.lfw_pairs.read_text().splitlines()
    lines[2] = "Lfw_Person_01\t1"
    faces.lfw_pairs.write_text("\n".join(lines) + "\n")
    (faces.root / lfw_path(lfw_name(6), 2)).unlink()
    out = tmp_path / "out"

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")

    assert caught.value.problems == (
        "line 3: expected 'NAME N1 N2' (same person) or 'NAME1 N1 NAME2 N2' "
        "(different people), found 2 fields",
        f"line 13: {lfw_path(lfw_name(6), 2)}: not found",
    )
    assert not out.exists()


def test_header_count_mismatch_writes_nothing(faces: FaceFolder, tmp_path: Path) -> None:
    text = faces.lfw_pairs.read_text().replace("2\t5\n", "2\t6\n", 1)
    faces.lfw_pairs.write_text(text)
    out = tmp_path / "out"

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")

    assert caught.value.problems == (
        "line 1: the header announces 2 sets of 6 matched and 6 mismatched pairs (24 pairs), "
        "but the list has 20 pair lines",
    )
    assert not out.exists()


def test_bad_label_writes_nothing(faces: FaceFolder, tmp_path: Path) -> None:
    text = faces.csv_pairs.read_text().replace(",true\n", ",yes\n", 1)
    faces.csv_pairs.write_text(text)
    out = tmp_path / "out"

    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.csv_pairs, faces.root, str(out), "mycsv")

    assert caught.value.problems == (
        "line 2: label 'yes' is not one of 1, 0, true, false, same or diff",
    )
    assert not out.exists()


def test_failed_rebuild_keeps_existing_dataset(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    before = {path.name: path.read_bytes() for path in (out / "mylfw").iterdir()}
    (faces.root / lfw_path(lfw_name(0), 1)).unlink()

    with pytest.raises(PairListError):
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", overwrite=True)

    after = {path.name: path.read_bytes() for path in (out / "mylfw").iterdir()}
    assert after == before


def test_rerun_unchanged_is_noop(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    mtimes = {path.name: path.stat().st_mtime_ns for path in (out / "mylfw").iterdir()}

    second = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")

    assert not second.written
    assert second.manifest == first.manifest
    assert {path.name: path.stat().st_mtime_ns for path in (out / "mylfw").iterdir()} == mtimes


def test_rerun_reads_but_does_not_decode(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    progress = RecordingProgress()

    result = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", progress=progress)

    assert not result.written
    assert progress.started == [("mylfw: reading images", 30)]
    assert progress.finished == [("mylfw: reading images", 30)]


def test_rerun_after_image_corruption(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    before = {path.name: path.read_bytes() for path in (out / "mylfw").iterdir()}
    image = faces.root / lfw_path(other_name(3), 1)
    image.write_bytes(image.read_bytes()[:3000])

    with pytest.raises(BinconvError, match="was built from other images") as without_overwrite:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    with pytest.raises(PairListError) as with_overwrite:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", overwrite=True)

    assert not isinstance(without_overwrite.value, PairListError)
    assert len(with_overwrite.value.problems) == 1
    problem = with_overwrite.value.problems[0]
    assert problem.startswith(f"line 10: {lfw_path(other_name(3), 1)}: not a valid jpg image")
    assert {path.name: path.read_bytes() for path in (out / "mylfw").iterdir()} == before


def test_rerun_with_overwrite_rebuilds(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    manifest_path = out / "mylfw" / "mylfw.json"
    os.utime(manifest_path, ns=(0, 0))

    result = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", overwrite=True)

    assert result.written
    assert manifest_path.stat().st_mtime_ns > 0
    assert read_back(out / "mylfw") == faces.lfw_expected


def test_rerun_after_image_change_needs_overwrite(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    changed = faces.root / lfw_path(lfw_name(0), 1)
    with Image.open(changed) as image:
        buffer = io.BytesIO()
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(buffer, format="JPEG")
    changed.write_bytes(buffer.getvalue())

    with pytest.raises(BinconvError) as caught:
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    second = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", overwrite=True)

    assert str(caught.value) == (
        f"{out / 'mylfw'}: an existing dataset was built from other images: at least one image "
        "was added, removed or changed; rerun with --overwrite to replace it"
    )
    assert second.written
    assert second.manifest.source.sha256 == first.manifest.source.sha256
    assert second.manifest.source.images_sha256 != first.manifest.source.images_sha256
    assert read_back(out / "mylfw")[0][0] == buffer.getvalue()


def test_rerun_other_shard_size_needs_overwrite(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", pairs_per_shard=5)

    with pytest.raises(BinconvError, match="has 5 pairs per shard, but 500 were requested"):
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw")
    result = build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", overwrite=True)

    assert result.written
    assert sorted(path.name for path in (out / "mylfw").iterdir()) == [
        "mylfw-000000.tar",
        "mylfw.json",
    ]


def test_rerun_with_other_list_needs_overwrite(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "faces")

    with pytest.raises(BinconvError, match=r"was built from another pair list \(pairs\.txt"):
        build_pairs_dataset(faces.csv_pairs, faces.root, str(out), "faces")
    result = build_pairs_dataset(faces.csv_pairs, faces.root, str(out), "faces", overwrite=True)

    assert read_back(out / "faces") == faces.csv_expected
    assert result.manifest.source.name == "pairs.csv"


def test_missing_shard_of_existing_dataset(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", pairs_per_shard=5)
    (out / "mylfw" / "mylfw-000002.tar").unlink()

    with pytest.raises(BinconvError, match="an existing dataset has missing or changed shards"):
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(out), "mylfw", pairs_per_shard=5)


def test_invalid_existing_manifest_needs_overwrite(faces: FaceFolder, tmp_path: Path) -> None:
    manifest = tmp_path / "out" / "mylfw" / "mylfw.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{not json")

    with pytest.raises(ManifestError, match="rerun with --overwrite to replace the dataset"):
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), "mylfw")
    build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), "mylfw", overwrite=True)

    assert read_back(tmp_path / "out" / "mylfw") == faces.lfw_expected


def test_image_changed_during_write(faces: FaceFolder, tmp_path: Path) -> None:
    image = faces.root / lfw_path(lfw_name(8), 2)

    def change_image_after_last_decode(stage: str, count: int) -> None:
        if stage == "mylfw: decoding images" and count == 30:
            image.write_bytes(faces.root.joinpath(lfw_path(lfw_name(8), 1)).read_bytes())

    progress = RecordingProgress(change_image_after_last_decode)
    out = tmp_path / "out"
    with pytest.raises(ImageError, match="changed while the dataset was being written"):
        build_pairs_dataset(
            faces.lfw_pairs, faces.root, str(out), "mylfw", pairs_per_shard=4, progress=progress
        )

    # Pair 13 is the first with the changed image: pairs 0-12 were written,
    # three full shards of them, and then removed.
    assert progress.finished == [
        ("mylfw: reading images", 30),
        ("mylfw: decoding images", 30),
        ("mylfw: writing pairs", 13),
    ]
    assert [path.name for path in (out / "mylfw").iterdir()] == []


def test_missing_image_folder_is_reported(faces: FaceFolder, tmp_path: Path) -> None:
    with pytest.raises(PairListError) as caught:
        build_pairs_dataset(faces.lfw_pairs, tmp_path / "nowhere", str(tmp_path / "out"), "x")
    assert caught.value.problems == (f"image folder {tmp_path / 'nowhere'} not found",)


def test_missing_pair_list_is_reported(faces: FaceFolder, tmp_path: Path) -> None:
    with pytest.raises(PairListError, match="pair list not found"):
        build_pairs_dataset(tmp_path / "none.txt", faces.root, str(tmp_path / "out"), "x")


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "-x", "lfw set"])
def test_invalid_dataset_name_is_rejected(faces: FaceFolder, tmp_path: Path, name: str) -> None:
    with pytest.raises(BinconvError, match="invalid dataset name"):
        build_pairs_dataset(faces.lfw_pairs, faces.root, str(tmp_path / "out"), name)
    assert not (tmp_path / "out").exists()


def test_zero_pairs_per_shard_is_rejected(faces: FaceFolder, tmp_path: Path) -> None:
    with pytest.raises(BinconvError, match="pairs per shard must be at least 1, got 0"):
        build_pairs_dataset(
            faces.lfw_pairs, faces.root, str(tmp_path / "out"), "x", pairs_per_shard=0
        )
