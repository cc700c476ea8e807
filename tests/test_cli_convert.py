"""Tests of the convert, inspect, verify and demo commands, in process and as a console script."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from binconv.cli import app
from tests.binbuilder import (
    alternating_issame,
    face_jpegs,
    face_png,
    gray_jpeg,
    malicious_bin,
    write_bin,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return face_jpegs(10, seed=5)


@pytest.fixture
def five_pair_bin(tmp_path: Path, images: list[bytes]) -> Path:
    return write_bin(tmp_path / "five.bin", images, alternating_issame(5), images_as="numpy-n1")


def console_script() -> str:
    """Return the path of the installed `binconv` console script."""
    script = shutil.which("binconv", path=str(Path(sys.executable).parent))
    assert script is not None, "binconv is not installed in this environment"
    return script


def test_convert_prints_summary(tmp_path: Path, five_pair_bin: Path) -> None:
    result = runner.invoke(app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("five: 5 pairs (3 same, 2 different) in 1 shard, ")
    assert (tmp_path / "out" / "five" / "five.json").is_file()


def test_convert_rerun_says_up_to_date(tmp_path: Path, five_pair_bin: Path) -> None:
    runner.invoke(app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out")])

    result = runner.invoke(app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out")])

    assert result.exit_code == 0
    assert "five: up to date with" in result.stdout
    assert "--overwrite rebuilds it" in result.stdout


def test_convert_quiet_prints_nothing(tmp_path: Path, five_pair_bin: Path) -> None:
    result = runner.invoke(
        app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out"), "--quiet"]
    )

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == ""


def test_convert_pairs_per_shard_option(tmp_path: Path, five_pair_bin: Path) -> None:
    result = runner.invoke(
        app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out"), "--pairs-per-shard", "2"]
    )

    assert result.exit_code == 0
    assert len(list((tmp_path / "out" / "five").glob("five-*.tar"))) == 3


def test_convert_rejects_zero_pairs_per_shard(tmp_path: Path, five_pair_bin: Path) -> None:
    result = runner.invoke(
        app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out"), "--pairs-per-shard", "0"]
    )

    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d, imgs: d / "missing.bin", r"missing\.bin: file not found"),
        (
            lambda d, imgs: _write(d / "text.bin", b"plain text, not a pickle"),
            r"text\.bin: not a pickle",
        ),
        (
            lambda d, imgs: _write(
                d / "cut.bin", write_bin(d / "x.bin", imgs, [True] * 5).read_bytes()[:5000]
            ),
            r"cut\.bin: the file is truncated",
        ),
        (
            lambda d, imgs: write_bin(d / "odd.bin", imgs[:9], [True] * 4),
            r"odd\.bin: the file has an odd number of images \(9\)",
        ),
        (
            lambda d, imgs: write_bin(d / "count.bin", imgs, [True] * 4),
            r"count\.bin: 10 images make 5 pairs, but issame has 4 entries",
        ),
        (
            lambda d, imgs: write_bin(
                d / "entry.bin", [*imgs[:7], b"garbage", *imgs[8:]], [True] * 5
            ),
            r"entry\.bin: pair 3: img2 \(image 7\) is not an encoded image",
        ),
        (
            lambda d, imgs: _write(d / "dict.bin", b"\x80\x04}\x94."),
            r"dict\.bin: byte 2: pickle opcode EMPTY_DICT is not allowed",
        ),
    ],
    ids=["missing", "not-pickle", "truncated", "odd", "count", "entry", "structure"],
)
def test_convert_bad_input_exit_2(tmp_path: Path, images: list[bytes], setup, message: str) -> None:
    source = setup(tmp_path, images)

    result = runner.invoke(app, ["convert", str(source), "-o", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("binconv: error: ")
    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def _pickled(folder: Path, images: list[bytes]) -> bytes:
    return write_bin(folder / "whole.bin", images, [True] * 5).read_bytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_convert_malicious_exit_2(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source = malicious_bin(tmp_path / "evil.bin", marker)

    result = runner.invoke(app, ["convert", str(source), "-o", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert "forbidden global posix.system" in result.stderr
    assert not marker.exists()


def test_verify_success(tmp_path: Path, five_pair_bin: Path) -> None:
    runner.invoke(app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out")])

    result = runner.invoke(app, ["verify", str(five_pair_bin), str(tmp_path / "out" / "five")])

    assert result.exit_code == 0, result.output
    assert "5 pairs byte-identical, 1 shard checksum matches the manifest" in result.stdout


def test_verify_names_differing_image(tmp_path: Path, images: list[bytes]) -> None:
    original = write_bin(tmp_path / "five.bin", images, alternating_issame(5))
    runner.invoke(app, ["convert", str(original), "-o", str(tmp_path / "out")])
    changed_images = list(images)
    changed_images[7] = images[7][:100] + bytes([images[7][100] ^ 1]) + images[7][101:]
    (tmp_path / "changed").mkdir()
    changed = write_bin(tmp_path / "changed" / "five.bin", changed_images, alternating_issame(5))

    result = runner.invoke(app, ["verify", str(changed), str(tmp_path / "out" / "five")])

    assert result.exit_code == 1
    assert "pair 3 differs" in result.stderr
    assert "img2 bytes differ first at offset 100" in result.stderr


def test_verify_names_differing_label(tmp_path: Path, images: list[bytes]) -> None:
    original = write_bin(tmp_path / "five.bin", images, [True] * 5)
    runner.invoke(app, ["convert", str(original), "-o", str(tmp_path / "out")])
    write_bin(original, images, [True, True, False, True, True])

    result = runner.invoke(app, ["verify", str(original), str(tmp_path / "out" / "five")])

    assert result.exit_code == 1
    assert "pair 2 differs" in result.stderr
    assert "issame is 0 in the .bin file and 1 in the shard" in result.stderr


def test_verify_names_missing_pair(tmp_path: Path, images: list[bytes]) -> None:
    original = write_bin(tmp_path / "five.bin", images, [True] * 5)
    runner.invoke(app, ["convert", str(original), "-o", str(tmp_path / "out")])
    write_bin(original, [*images, *images[:2]], [True] * 6)

    result = runner.invoke(app, ["verify", str(original), str(tmp_path / "out" / "five")])

    assert result.exit_code == 1
    assert "pair 5 differs" in result.stderr
    assert "has 6 pairs" in result.stderr


def test_verify_detects_changed_shard_bytes(tmp_path: Path, five_pair_bin: Path) -> None:
    runner.invoke(app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out")])
    shard = tmp_path / "out" / "five" / "five-000000.tar"
    # Same pairs, other tar headers: the checksum must catch what pair compares cannot.
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            member.mtime = 12345
            tar.addfile(member, io.BytesIO(data))

    result = runner.invoke(app, ["verify", str(five_pair_bin), str(tmp_path / "out" / "five")])

    assert result.exit_code == 1
    assert "five-000000.tar" in result.stderr
    assert "but the manifest records" in result.stderr


def lie_about_positives(manifest_path: Path) -> None:
    """Move one pair from num_negative to num_positive, keeping the total consistent."""
    data = json.loads(manifest_path.read_text())
    data["num_positive"] += 1
    data["num_negative"] -= 1
    manifest_path.write_text(json.dumps(data))


def test_verify_detects_wrong_positive_count(tmp_path: Path, five_pair_bin: Path) -> None:
    runner.invoke(app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out")])
    lie_about_positives(tmp_path / "out" / "five" / "five.json")

    result = runner.invoke(app, ["verify", str(five_pair_bin), str(tmp_path / "out" / "five")])

    assert result.exit_code == 1
    assert "five.json lists 4 same-person pairs" in result.stderr
    assert "have 3" in result.stderr


def test_inspect_detects_wrong_positive_count(tmp_path: Path, five_pair_bin: Path) -> None:
    runner.invoke(app, ["convert", str(five_pair_bin), "-o", str(tmp_path / "out")])
    lie_about_positives(tmp_path / "out" / "five" / "five.json")

    result = runner.invoke(app, ["inspect", str(tmp_path / "out" / "five")])

    assert result.exit_code == 2
    assert "five.json lists 4 same-person pairs, but the shards have 3" in result.stderr
    assert result.stdout == ""


def test_verify_missing_dataset_exit_2(tmp_path: Path, five_pair_bin: Path) -> None:
    result = runner.invoke(app, ["verify", str(five_pair_bin), str(tmp_path / "nowhere")])

    assert result.exit_code == 2
    assert "no dataset manifest found" in result.stderr


@pytest.mark.parametrize("command", ["verify", "inspect", "export"])
def test_file_given_as_dataset_exits_2(command: str, tmp_path: Path, five_pair_bin: Path) -> None:
    args = {
        "verify": ["verify", str(five_pair_bin), str(five_pair_bin)],
        "inspect": ["inspect", str(five_pair_bin / "five")],
        "export": ["export", str(five_pair_bin), "-o", str(tmp_path / "copy.bin")],
    }[command]

    result = runner.invoke(app, args)

    assert result.exit_code == 2, result.output
    assert "no dataset manifest found" in result.stderr
    assert result.stderr.count("\n") == 1


def test_demo_out_is_a_file_exits_2(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_bytes(b"not a folder")

    result = runner.invoke(app, ["demo", "--out", str(taken)])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"binconv: error: {taken}: cannot create the output folder")
    assert taken.read_bytes() == b"not a folder"


def test_inspect_bin_json(tmp_path: Path) -> None:
    mixed = [face_png(1), gray_jpeg(2), *face_jpegs(1, size=(96, 112)), *face_jpegs(1)]
    source = write_bin(tmp_path / "mixed.bin", mixed, [True, False], protocol=2)

    result = runner.invoke(app, ["inspect", str(source), "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "bin"
    assert report["num_pairs"] == 2
    assert report["num_positive"] == 1
    assert report["num_negative"] == 1
    assert report["image_formats"] == {"PNG": 1, "JPEG": 3}
    assert report["image_sizes"] == {"112x112": 3, "96x112": 1}
    assert report["image_modes"] == {"RGB": 3, "L": 1}
    assert report["image_bytes"] == sum(len(image) for image in mixed)
    assert report["file_bytes"] == source.stat().st_size
    assert report["pickle_protocol"] == 2
    assert report["image_container"] == "bytes"


def test_inspect_dataset_text(tmp_path: Path, small_lfw_bin: Path) -> None:
    runner.invoke(app, ["convert", str(small_lfw_bin), "-o", str(tmp_path / "out")])

    result = runner.invoke(app, ["inspect", str(tmp_path / "out" / "small_lfw")])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith("(dataset of 1 shard)")
    assert "pairs:      10 (10 same person, 0 different people)" in lines[1]
    assert "formats:    JPEG 20" in lines[3]
    assert "sizes:      112x112 20" in lines[4]
    assert "pickle:     protocol 3, images stored as numpy" in lines[6]


def test_inspect_bin_and_dataset_agree(tmp_path: Path, small_lfw_bin: Path) -> None:
    runner.invoke(app, ["convert", str(small_lfw_bin), "-o", str(tmp_path / "out")])

    from_bin = json.loads(runner.invoke(app, ["inspect", str(small_lfw_bin), "--json"]).stdout)
    from_dataset = json.loads(
        runner.invoke(app, ["inspect", str(tmp_path / "out" / "small_lfw"), "--json"]).stdout
    )

    for field in ("num_pairs", "num_positive", "image_formats", "image_sizes", "image_bytes"):
        assert from_bin[field] == from_dataset[field], field
    assert from_dataset["source_sha256"] == from_bin["source_sha256"]


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("convert", ["--output", "--pairs-per-shard", "--overwrite", "--quiet", "--verbose"]),
        ("inspect", ["--json", "--verbose"]),
        ("verify", ["BIN", "DATASET_DIR", "--verbose"]),
        ("demo", ["--out", "--pairs", "--quiet", "--verbose"]),
    ],
)
def test_help_explains_every_option(command: str, options: list[str]) -> None:
    # Rich sizes help output from COLUMNS; a wide table keeps each option on one row.
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for option in options:
        rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
        line = next(row for row in rows if f" {option} " in row)
        # Each option's line carries a description after the option name.
        assert len(line.split(option, 1)[1].strip(" │")) > 10, line


def test_demo_runs_main_job(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--pairs", "20"])

    assert result.exit_code == 0, result.output
    assert "demo: 20 pairs (10 same, 10 different)" in result.stdout
    assert "verified: 20 pairs byte-identical" in result.stdout
    assert (tmp_path / "demo" / "demo.bin").is_file()
    assert (tmp_path / "demo" / "shards" / "demo" / "demo.json").is_file()


def test_demo_twice_rebuilds(tmp_path: Path) -> None:
    # 10 pairs: the demo now also evaluates, and 10-fold evaluation needs a pair per fold.
    first = runner.invoke(app, ["demo", "--out", str(tmp_path), "--pairs", "10", "--quiet"])
    second = runner.invoke(app, ["demo", "--out", str(tmp_path), "--pairs", "10", "--quiet"])

    assert first.exit_code == 0
    assert second.exit_code == 0
    assert second.stdout == ""


def test_console_script_small_lfw_roundtrip(tmp_path: Path, small_lfw_bin: Path) -> None:
    binconv = console_script()
    out = tmp_path / "out"

    converted = subprocess.run(
        [binconv, "convert", str(small_lfw_bin), "-o", str(out)], capture_output=True, text=True
    )
    verified = subprocess.run(
        [binconv, "verify", str(small_lfw_bin), str(out / "small_lfw")],
        capture_output=True,
        text=True,
    )

    assert converted.returncode == 0, converted.stderr
    assert converted.stderr == ""  # stderr is not a terminal, so no progress bar
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: ")


def test_console_script_bad_input_no_traceback(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = malicious_bin(tmp_path / "evil.bin", marker)

    for source in (tmp_path / "missing.bin", evil):
        result = subprocess.run(
            [console_script(), "convert", str(source), "-o", str(tmp_path / "out")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("binconv: error: ")
        assert result.stderr.count("\n") == 1
    assert not marker.exists()


def test_commands_do_not_import_torch(tmp_path: Path, five_pair_bin: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from typer.testing import CliRunner
        from binconv.cli import app

        bin_path, out = sys.argv[1], sys.argv[2]
        runner = CliRunner()
        for args in (
            ["convert", bin_path, "-o", out],
            ["inspect", bin_path],
            ["inspect", out + "/five"],
            ["verify", bin_path, out + "/five"],
        ):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        print("torch" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(five_pair_bin), str(tmp_path / "out")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
