"""Tests for `binconv evaluate` and the evaluation step of `binconv demo`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from binconv.cli import app
from binconv.commands.evaluate import parse_image_size
from evaluator.evaluate import evaluate

from .shardbuilder import make_pairs, write_pairs
from .tiny_models import build_tiny_cnn

FACTORY = "tests.evaluator.tiny_models:build_tiny_cnn"
CLASSIC_ACCURACY = re.compile(r"\d\.\d{5}\+-\d\.\d{5}")

pytestmark = pytest.mark.filterwarnings("ignore::evaluator.errors.UndefinedMetricWarning")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two converted datasets, `alpha` (30 pairs) and `beta` (24 pairs)."""
    root = tmp_path_factory.mktemp("datasets")
    write_pairs(root, "beta", make_pairs(24, seed=2), pairs_per_shard=10)
    write_pairs(root, "alpha", make_pairs(30, seed=1), pairs_per_shard=10)
    return root


def run(*args: str) -> typer.testing.Result:
    return CliRunner().invoke(app, ["evaluate", *args])


def test_table_has_one_row_per_dataset(root: Path) -> None:
    result = run(FACTORY, str(root), "--workers", "0", "-q")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["dataset", "pairs", "XNorm", "Accuracy-Flip"]
    assert [line.split()[0] for line in lines[1:]] == ["alpha", "beta"]
    assert lines[1].split()[1] == "30"
    assert CLASSIC_ACCURACY.search(lines[1])


def test_json_matches_library_result(root: Path) -> None:
    result = run(FACTORY, str(root / "alpha"), str(root / "beta" / "beta.json"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [item["dataset"] for item in data] == ["alpha", "beta"]
    expected = evaluate(build_tiny_cnn(), str(root / "alpha"), num_workers=0)
    assert data[0]["accuracy"] == expected.accuracy
    assert data[0]["fold_thresholds"] == list(expected.fold_thresholds)
    assert data[0]["xnorm"] == expected.xnorm
    assert data[1]["num_pairs"] == 24


def test_plot_writes_png(root: Path, tmp_path: Path) -> None:
    plot = tmp_path / "roc.png"
    result = run(FACTORY, str(root), "--workers", "0", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote ROC curves to {plot}" in result.stdout


def test_undefined_metrics_warned_in_one_line(tmp_path: Path) -> None:
    pairs = [pair for pair in make_pairs(30) if pair.issame][:10]
    positives = [type(pair)(i, pair.img1, pair.img2, True) for i, pair in enumerate(pairs)]
    write_pairs(tmp_path, "positives", positives, pairs_per_shard=10)
    result = run(FACTORY, str(tmp_path / "positives"), "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "n/a" in result.stdout
    assert "binconv: warning: positives: undefined verification metrics are NaN" in result.stderr


def test_missing_dataset_exits_2(tmp_path: Path) -> None:
    result = run(FACTORY, str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert result.stderr.startswith("binconv: error: ")
    assert "not found" in result.stderr
    assert "Traceback" not in result.output


def test_damaged_shard_exits_2(root: Path, tmp_path: Path) -> None:
    write_pairs(tmp_path, "gamma", make_pairs(20), pairs_per_shard=10)
    (tmp_path / "gamma" / "gamma-000001.tar").write_bytes(b"")
    result = run(FACTORY, str(tmp_path / "gamma"), "--workers", "2")
    assert result.exit_code == 2
    assert "gamma-000001.tar" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_image_size_rejected(root: Path) -> None:
    result = run(FACTORY, str(root), "--image-size", "big")
    assert result.exit_code == 2
    assert "expected SIZE or HEIGHTxWIDTH" in result.output


@pytest.mark.parametrize(("text", "size"), [("112", (112, 112)), ("112x96", (112, 96))])
def test_parse_image_size(text: str, size: tuple[int, int]) -> None:
    assert parse_image_size(text) == size


def test_console_script_error_without_traceback(tmp_path: Path, root: Path) -> None:
    script = Path(sys.executable).with_name("binconv")
    completed = subprocess.run(
        [str(script), "evaluate", str(tmp_path / "missing.pt"), str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("binconv: error: model file")
    assert "Traceback" not in completed.stderr


def test_other_commands_do_not_import_torch() -> None:
    code = "import sys, binconv.cli; print('torch' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert completed.stdout.strip() == "False"


def test_small_demo_skips_evaluation(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--pairs", "6"])
    assert result.exit_code == 0, result.output
    assert (
        "skipped evaluating the demo model: the 10-fold protocol needs at least 10 pairs, got 6"
        in result.stdout
    )


def test_demo_prints_evaluation(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--pairs", "40"])
    assert result.exit_code == 0, result.output
    assert "evaluated the built-in demo model" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("demo "))
    assert row.split()[1] == "40"
    assert CLASSIC_ACCURACY.search(row)
