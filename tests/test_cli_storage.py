"""Tests of the CLI with S3 and HTTP locations: storage options, convert -o s3://, copy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from typer.testing import CliRunner

from binconv.cli import app
from binconv.storage_options import configure_storage, get_storage_options
from tests.servers import HTTPFileServer, S3Server

runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_storage_options() -> Iterator[None]:
    """Undo the process-wide options that each in-process CLI run sets."""
    previous = get_storage_options()
    yield
    configure_storage(previous)


@pytest.fixture
def converted(tmp_path: Path, small_lfw_bin: Path) -> Path:
    """The real small_lfw.bin converted to local disk in 4-pair shards; returns the root."""
    result = runner.invoke(
        app, ["convert", str(small_lfw_bin), "-o", str(tmp_path / "sets"), "--pairs-per-shard", "4"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "sets"


def console_script() -> str:
    script = shutil.which("binconv", path=str(Path(sys.executable).parent))
    assert script is not None, "binconv is not installed in this environment"
    return script


def test_convert_to_s3_then_inspect_and_verify(
    s3_server: S3Server, s3_bucket: str, small_lfw_bin: Path
) -> None:
    endpoint = ["--s3-endpoint", s3_server.endpoint_url]
    out = f"{s3_bucket}/sets"
    result = runner.invoke(app, [*endpoint, "convert", str(small_lfw_bin), "-o", out])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("small_lfw: 10 pairs (10 same, 0 different) in 1 shard")

    fs = fsspec.filesystem("s3", endpoint_url=s3_server.endpoint_url)
    names = sorted(path.rsplit("/", 1)[1] for path in fs.ls(f"{out}/small_lfw", refresh=True))
    assert names == ["small_lfw-000000.tar", "small_lfw.json"]

    inspected = runner.invoke(app, [*endpoint, "inspect", f"{out}/small_lfw"])
    assert inspected.exit_code == 0, inspected.output
    assert "pairs:      10 (10 same person, 0 different people)" in inspected.stdout

    verified = runner.invoke(app, [*endpoint, "verify", str(small_lfw_bin), f"{out}/small_lfw"])
    assert verified.exit_code == 0, verified.output


def test_evaluate_command_from_s3_root_equals_local(
    s3_server: S3Server, s3_bucket: str, converted: Path
) -> None:
    model = "evaluator.demo_model:build_demo_model"
    local = runner.invoke(app, ["evaluate", model, str(converted), "--json", "--workers", "0"])
    assert local.exit_code == 0, local.output
    copied = runner.invoke(app, ["copy", str(converted), f"{s3_bucket}/sets", "--quiet"])
    assert copied.exit_code == 0, copied.output

    remote = runner.invoke(
        app,
        [
            "--s3-endpoint",
            s3_server.endpoint_url,
            "evaluate",
            model,
            f"{s3_bucket}/sets",
            "--json",
            "--workers",
            "0",
        ],
    )
    assert remote.exit_code == 0, remote.output
    [local_result] = json.loads(local.stdout)
    [remote_result] = json.loads(remote.stdout)
    assert remote_result["dataset"] == "small_lfw"
    assert remote_result["num_pairs"] == 10
    for key in ("fold_accuracies", "fold_thresholds", "accuracy", "xnorm"):
        assert remote_result[key] == local_result[key], key


def test_copy_command_publishes_and_reports_up_to_date(
    s3_server: S3Server, s3_bucket: str, converted: Path
) -> None:
    # No --s3-endpoint: the endpoint comes from AWS_ENDPOINT_URL, which the fixture sets.
    result = runner.invoke(app, ["copy", str(converted), f"{s3_bucket}/pub"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("small_lfw: 3 shards (")
    assert f"verified, 0 already present -> {s3_bucket}/pub/small_lfw" in result.stdout

    again = runner.invoke(app, ["copy", str(converted), f"{s3_bucket}/pub"])
    assert again.exit_code == 0, again.output
    assert again.stdout == f"small_lfw: up to date at {s3_bucket}/pub/small_lfw, nothing to do\n"


def test_copy_command_missing_shard_exits_2(
    http_server: HTTPFileServer, converted: Path, tmp_path: Path
) -> None:
    shutil.copytree(converted, http_server.root / "sets")
    (http_server.root / "sets" / "small_lfw" / "small_lfw-000001.tar").unlink()
    result = runner.invoke(
        app, ["copy", f"{http_server.url}/sets", str(tmp_path / "mirror"), "--quiet"]
    )
    assert result.exit_code == 2
    url = f"{http_server.url}/sets/small_lfw/small_lfw-000001.tar"
    assert result.stderr == f"binconv: error: shard {url} not found\n"
    assert not (tmp_path / "mirror" / "small_lfw" / "small_lfw.json").exists()


def test_verify_from_http_detects_corrupt_shard(
    http_server: HTTPFileServer, converted: Path, small_lfw_bin: Path
) -> None:
    shutil.copytree(converted, http_server.root / "sets")
    shard = http_server.root / "sets" / "small_lfw" / "small_lfw-000002.tar"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01  # the tar padding: the pairs stay equal, the bytes do not
    shard.write_bytes(bytes(data))
    result = runner.invoke(app, ["verify", str(small_lfw_bin), f"{http_server.url}/sets/small_lfw"])
    assert result.exit_code == 1
    assert "small_lfw-000002.tar has sha256" in result.stderr


def test_storage_option_rejects_invalid_item(converted: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--storage-option", "endpoint=x", "copy", str(converted), str(tmp_path / "b")]
    )
    assert result.exit_code == 2
    assert "invalid storage option 'endpoint=x': expected PROTOCOL.KEY=VALUE" in result.stderr


def test_storage_flags_set_options(tmp_path: Path, converted: Path) -> None:
    result = runner.invoke(
        app,
        [
            "--s3-endpoint",
            "http://127.0.0.1:9",
            "--anon",
            "--profile",
            "team",
            "--retries",
            "2",
            "--timeout",
            "3",
            "--storage-option",
            "s3.requester_pays=true",
            "copy",
            str(converted),
            str(tmp_path / "local-copy"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    options = get_storage_options()
    assert options.s3_endpoint_url == "http://127.0.0.1:9"
    assert options.anon is True
    assert options.profile == "team"
    assert options.max_retries == 2
    assert options.timeout_s == 3.0
    assert options.extra == {"s3": {"requester_pays": True}}


def test_console_copy_logs_retries_to_stderr(
    http_server: HTTPFileServer, converted: Path, tmp_path: Path
) -> None:
    shutil.copytree(converted, http_server.root / "sets")
    http_server.plan.fail("small_lfw-000000.tar", status=503, times=2)
    command = [
        console_script(),
        "--retries",
        "3",
        "copy",
        f"{http_server.url}/sets/small_lfw",
        str(tmp_path / "mirror"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    retries = [line for line in result.stderr.splitlines() if "retry" in line]
    assert len(retries) == 2
    assert "small_lfw-000000.tar" in retries[0]
    assert "503" in retries[0]
    assert "retry 1 of 3" in retries[0]
    assert "retry 2 of 3" in retries[1]
    assert (tmp_path / "mirror" / "small_lfw" / "small_lfw.json").is_file()


@pytest.mark.parametrize("command", ["inspect", "evaluate", "copy"])
def test_unknown_url_scheme_exits_2(command: str, converted: Path) -> None:
    url = "nosuchfs://bucket/sets"
    args = {
        "inspect": ["inspect", url],
        "evaluate": ["evaluate", "evaluator.demo_model:build_demo_model", url],
        "copy": ["copy", str(converted), url, "--quiet"],
    }[command]

    result = runner.invoke(app, args)

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("binconv: error: nosuchfs://bucket/sets")
    assert "unsupported location" in result.stderr
    assert result.stderr.count("\n") == 1
