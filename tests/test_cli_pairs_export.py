"""Tests for the `binconv pairs` and `binconv export` commands."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from typer.testing import CliRunner

from binconv.cli import app

from .face_folders import FaceFolder, build_face_folder, lfw_name, lfw_path

runner = CliRunner()


@pytest.fixture
def faces(shared_data: Path, tmp_path: Path) -> FaceFolder:
    return build_face_folder(shared_data, tmp_path / "input")


def pairs_args(faces: FaceFolder, out: Path, *extra: str) -> list[str]:
    return [
        "pairs",
        str(faces.lfw_pairs),
        "--images",
        str(faces.root),
        "-o",
        str(out),
        "--name",
        "mylfw",
        *extra,
    ]


def test_pairs_prints_summary(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, pairs_args(faces, out, "--pairs-per-shard", "8"))

    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "mylfw" / "mylfw.json").read_text())
    megabytes = sum(shard["size"] for shard in manifest["shardlist"]) / 1e6
    expected = (
        f"mylfw: 20 pairs (10 same, 10 different) in 3 shards, {megabytes:.1f} MB -> "
        f"{out / 'mylfw'} ("
    )
    assert result.stdout.startswith(expected)
    assert re.fullmatch(r"\d+\.\d s\)\n", result.stdout[len(expected) :])
    assert manifest["num_pairs"] == 20
    assert manifest["source"]["kind"] == "pairs"


def test_pairs_quiet_prints_nothing(faces: FaceFolder, tmp_path: Path) -> None:
    result = runner.invoke(app, pairs_args(faces, tmp_path / "out", "--quiet"))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == ""
    assert (tmp_path / "out" / "mylfw" / "mylfw.json").is_file()


def test_pairs_rerun_says_up_to_date(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner.invoke(app, pairs_args(faces, out))

    result = runner.invoke(app, pairs_args(faces, out))

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"mylfw: up to date with {faces.lfw_pairs}, nothing to do "
        f"(20 pairs in {out / 'mylfw'}; --overwrite rebuilds it)\n"
    )
    rebuilt = runner.invoke(app, pairs_args(faces, out, "--overwrite"))
    assert f"in 1 shard, 0.3 MB -> {out / 'mylfw'} (" in rebuilt.stdout


def test_pairs_other_input_exits_2(faces: FaceFolder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner.invoke(app, pairs_args(faces, out, "-q"))

    result = runner.invoke(app, pairs_args(faces, out, "-q", "--pairs-per-shard", "7"))

    assert result.exit_code == 2
    assert result.stderr == (
        f"binconv: error: {out / 'mylfw'}: an existing dataset has 500 pairs per shard, "
        "but 7 were requested; rerun with --overwrite to replace it\n"
    )


def test_pairs_bad_input_lists_problems(faces: FaceFolder, tmp_path: Path) -> None:
    (faces.root / lfw_path(lfw_name(2), 1)).unlink()
    (faces.root / lfw_path(lfw_name(4), 2)).write_bytes(b"GIF but not really")
    out = tmp_path / "out"

    result = runner.invoke(app, pairs_args(faces, out, "-q"))

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"binconv: error: {faces.lfw_pairs} (images in {faces.root}): 2 problems found, "
        "nothing was written:",
        f"  line 4: {lfw_path(lfw_name(2), 1)}: not found",
        f"  line 6: {lfw_path(lfw_name(4), 2)}: not an image file (first bytes "
        "4749462062757420); expected JPEG, PNG, BMP, GIF, TIFF or WebP",
    ]
    assert not out.exists()


def test_pairs_format_option_is_checked(faces: FaceFolder, tmp_path: Path) -> None:
    result = runner.invoke(app, pairs_args(faces, tmp_path / "out", "--format", "xml"))
    assert result.exit_code == 2
    assert "Invalid value for '--format'" in result.stderr


def test_pairs_format_option_forces_parser(faces: FaceFolder, tmp_path: Path) -> None:
    result = runner.invoke(app, pairs_args(faces, tmp_path / "out", "--format", "csv", "-q"))

    assert result.exit_code == 2
    assert "line 2: expected 3 fields 'path1,path2,label', found 1 field" in result.stderr


def test_pairs_zero_shard_size_rejected(faces: FaceFolder, tmp_path: Path) -> None:
    result = runner.invoke(app, pairs_args(faces, tmp_path / "out", "--pairs-per-shard", "0"))
    assert result.exit_code == 2
    assert "Invalid value for '--pairs-per-shard'" in result.stderr


def test_inspect_names_pair_list_source(faces: FaceFolder, tmp_path: Path) -> None:
    runner.invoke(app, pairs_args(faces, tmp_path / "out", "-q"))

    result = runner.invoke(app, ["inspect", str(tmp_path / "out" / "mylfw")])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    sha256 = hashlib.sha256(faces.lfw_pairs.read_bytes()).hexdigest()
    assert "  pickle:     none, built from a pair list and image files" in lines
    assert f"  sha256:     {sha256} (of the source pair list)" in lines
    assert "None" not in result.stdout


def test_export_prints_summary(faces: FaceFolder, tmp_path: Path) -> None:
    runner.invoke(app, pairs_args(faces, tmp_path / "out", "-q"))
    out = tmp_path / "mylfw.bin"

    result = runner.invoke(app, ["export", str(tmp_path / "out" / "mylfw"), "-o", str(out)])

    assert result.exit_code == 0, result.output
    megabytes = out.stat().st_size / 1e6
    assert result.stdout == f"{out}: 20 pairs (10 same, 10 different), {megabytes:.1f} MB\n"
    images, issame = pickle.loads(out.read_bytes())
    assert images[0] == faces.lfw_expected[0][0]
    assert issame == [expected[2] for expected in faces.lfw_expected]


def test_export_existing_file_exits_2(faces: FaceFolder, tmp_path: Path) -> None:
    runner.invoke(app, pairs_args(faces, tmp_path / "out", "-q"))
    out = tmp_path / "mylfw.bin"
    out.write_bytes(b"old")

    result = runner.invoke(app, ["export", str(tmp_path / "out" / "mylfw"), "-o", str(out)])

    assert result.exit_code == 2
    assert (
        result.stderr == f"binconv: error: {out}: already exists; pass --overwrite to replace it\n"
    )
    assert out.read_bytes() == b"old"


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            "pairs",
            [
                "--images",
                "--output",
                "--name",
                "--format",
                "--lfw-extension",
                "--pairs-per-shard",
                "--overwrite",
                "--quiet",
                "--verbose",
            ],
        ),
        ("export", ["--output", "--overwrite", "--quiet", "--verbose"]),
    ],
)
def test_help_describes_every_option(command: str, options: list[str]) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in options:
        assert option in result.stdout


def console_script() -> str:
    return os.path.join(sysconfig.get_path("scripts"), "binconv")


def test_console_script_error_exit_status(faces: FaceFolder, tmp_path: Path) -> None:
    (faces.root / lfw_path(lfw_name(0), 1)).unlink()

    completed = subprocess.run(
        [console_script(), *pairs_args(faces, tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.startswith("binconv: error: ")
    assert f"line 2: {lfw_path(lfw_name(0), 1)}: not found" in completed.stderr


def test_commands_do_not_import_torch(faces: FaceFolder, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from binconv.cli import app\n"
        "runner = CliRunner()\n"
        "args = sys.argv[1:]\n"
        "first = runner.invoke(app, args)\n"
        f"second = runner.invoke(app, ['export', {str(tmp_path / 'out' / 'mylfw')!r}, "
        f"'-o', {str(tmp_path / 'x.bin')!r}, '-q'])\n"
        "assert first.exit_code == 0, first.output\n"
        "assert second.exit_code == 0, second.output\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'torch'))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", code, *pairs_args(faces, tmp_path / "out", "-q")],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "[]\n"
    assert (tmp_path / "x.bin").is_file()
