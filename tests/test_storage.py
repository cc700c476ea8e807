"""Tests for binconv.storage against real S3 (moto) and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path

import fsspec
import pytest

from binconv.errors import ShardChecksumError, ShardError, StorageError
from binconv.storage import open_atomic_write, open_read, open_shard, url_to_fs
from binconv.storage_options import StorageOptions
from tests.servers import HTTPFileServer, S3Server

BLOCK = 1000
DATA = os.urandom(4 * BLOCK + 321)
SHA256 = hashlib.sha256(DATA).hexdigest()


def put_s3(server: S3Server, url: str, data: bytes) -> None:
    fs = fsspec.filesystem("s3", endpoint_url=server.endpoint_url)
    fs.pipe_file(url, data)


def s3_shard(server: S3Server, bucket: str, data: bytes = DATA) -> str:
    url = f"{bucket}/lfw/lfw-000000.tar"
    put_s3(server, url, data)
    return url


def http_shard(server: HTTPFileServer, data: bytes = DATA) -> str:
    (server.root / "lfw").mkdir(exist_ok=True)
    (server.root / "lfw" / "lfw-000000.tar").write_bytes(data)
    return f"{server.url}/lfw/lfw-000000.tar"


def http_options(**overrides: object) -> StorageOptions:
    settings: dict = {
        "retry_delay_s": 0.01,
        "max_retry_delay_s": 0.05,
        "timeout_s": 5.0,
        "block_size": BLOCK,
    }
    settings.update(overrides)
    return StorageOptions(**settings)


def test_open_shard_reads_s3_object_in_blocks(s3_server: S3Server, s3_bucket: str) -> None:
    url = s3_shard(s3_server, s3_bucket)
    with open_shard(url, len(DATA), SHA256, s3_server.options(block_size=BLOCK)) as stream:
        assert stream.read() == DATA
    ranges = [r.range for r in s3_server.plan.requests_for("lfw-000000.tar")]
    # The last request reads one byte past the expected end, to detect a longer object.
    expected = [f"bytes={start}-{start + BLOCK - 1}" for start in range(0, 4 * BLOCK, BLOCK)]
    assert ranges == [*expected, f"bytes=4000-{len(DATA)}"]


def test_open_shard_reads_http_file(http_server: HTTPFileServer) -> None:
    url = http_shard(http_server)
    with open_shard(url, len(DATA), SHA256, http_options()) as stream:
        assert stream.read() == DATA


def test_open_shard_local_file_checks_checksum(tmp_path: Path) -> None:
    path = tmp_path / "lfw-000000.tar"
    path.write_bytes(DATA)
    with open_shard(str(path), len(DATA), SHA256) as stream:
        assert stream.read() == DATA
    with pytest.raises(ShardChecksumError, match="but the manifest records"):
        open_shard(str(path), len(DATA), "0" * 64).read()


@pytest.mark.parametrize("status", [500, 503])
def test_open_shard_retries_s3_server_errors(
    s3_server: S3Server, s3_bucket: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = s3_shard(s3_server, s3_bucket)
    s3_server.plan.fail("lfw-000000.tar", status=status, times=2)
    with caplog.at_level(logging.WARNING, logger="binconv.retry"):
        stream = open_shard(url, len(DATA), SHA256, s3_server.options(block_size=BLOCK))
        assert stream.read() == DATA
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 2
    assert all(f"shard {url}" in message for message in retries)
    assert len(s3_server.plan.requests_for("lfw-000000.tar")) == 5 + 2


def test_open_shard_resumes_s3_block_after_cut_connection(
    s3_server: S3Server, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = s3_shard(s3_server, s3_bucket)
    stream = open_shard(url, len(DATA), SHA256, s3_server.options(block_size=BLOCK))
    first = stream.read(BLOCK)
    s3_server.plan.cut("lfw-000000.tar", after_bytes=100)
    with caplog.at_level(logging.WARNING, logger="binconv.retry"):
        rest = stream.read()
    assert first + rest == DATA
    assert len(caplog.records) == 1
    ranges = [r.range for r in s3_server.plan.requests_for("lfw-000000.tar")]
    assert ranges[1:3] == ["bytes=1000-1999", "bytes=1000-1999"]


def test_open_shard_fails_after_persistent_s3_errors(s3_server: S3Server, s3_bucket: str) -> None:
    url = s3_shard(s3_server, s3_bucket)
    s3_server.plan.fail("lfw-000000.tar", status=500, times=100)
    options = s3_server.options(block_size=BLOCK, max_retries=2)
    with pytest.raises(ShardError, match=rf"shard {url} .* failed after 3 attempts") as info:
        open_shard(url, len(DATA), SHA256, options).read()
    assert "HTTP 500" in str(info.value)
    assert len(s3_server.plan.requests_for("lfw-000000.tar")) == 3


def test_open_shard_s3_server_stopped_mid_shard(
    s3_server: S3Server, stoppable_s3_server: S3Server, s3_bucket: str
) -> None:
    url = s3_shard(s3_server, s3_bucket)
    options = stoppable_s3_server.options(block_size=BLOCK, max_retries=2)
    stream = open_shard(url, len(DATA), SHA256, options)
    assert stream.read(BLOCK) == DATA[:BLOCK]
    stoppable_s3_server.stop()
    expected = rf"reading shard {url} \(bytes 1000-1999\) failed after 3 attempts"
    with pytest.raises(ShardError, match=expected):
        stream.read()


def test_open_shard_missing_s3_object_fails_without_retry(
    s3_server: S3Server, s3_bucket: str
) -> None:
    url = f"{s3_bucket}/lfw/lfw-000009.tar"
    with pytest.raises(ShardError, match=rf"^shard {url} not found$"):
        open_shard(url, len(DATA), SHA256, s3_server.options()).read()
    assert len(s3_server.plan.requests_for("lfw-000009.tar")) == 1


def test_open_shard_detects_corrupt_s3_object(s3_server: S3Server, s3_bucket: str) -> None:
    corrupt = bytearray(DATA)
    corrupt[2500] ^= 0xFF
    url = s3_shard(s3_server, s3_bucket, bytes(corrupt))
    stream = open_shard(url, len(DATA), SHA256, s3_server.options(block_size=BLOCK))
    expected = rf"shard {url} has sha256 [0-9a-f]{{64}}, but the manifest records {SHA256}"
    with pytest.raises(ShardChecksumError, match=expected):
        stream.read()


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (DATA[:2500], "is truncated: it has 2500 bytes, but should have 4321"),
        (DATA[:2000], "is truncated: it has at most 2000 bytes, but should have 4321"),
        (DATA + b"x", "is longer than the 4321 bytes expected"),
    ],
    ids=["mid-block", "block-boundary", "longer"],
)
def test_open_shard_detects_wrong_size(
    s3_server: S3Server, s3_bucket: str, stored: bytes, message: str
) -> None:
    url = s3_shard(s3_server, s3_bucket, stored)
    stream = open_shard(url, len(DATA), SHA256, s3_server.options(block_size=BLOCK))
    with pytest.raises(ShardError, match=message):
        stream.read()


def test_read_to_end_checks_unread_rest(s3_server: S3Server, s3_bucket: str) -> None:
    corrupt = bytearray(DATA)
    corrupt[-1] ^= 0xFF
    url = s3_shard(s3_server, s3_bucket, bytes(corrupt))
    stream = open_shard(url, len(DATA), SHA256, s3_server.options(block_size=BLOCK))
    assert stream.read(10) == DATA[:10]
    with pytest.raises(ShardChecksumError, match="but the manifest records"):
        stream.read_to_end()


def test_open_shard_retries_http_errors_and_cuts(
    http_server: HTTPFileServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = http_shard(http_server)
    http_server.plan.fail("lfw-000000.tar", status=502, times=1)
    http_server.plan.cut("lfw-000000.tar", after_bytes=10, times=1)
    with caplog.at_level(logging.WARNING, logger="binconv.retry"):
        assert open_shard(url, len(DATA), SHA256, http_options()).read() == DATA
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "502" in messages[0]
    assert "ClientPayloadError" in messages[1]


def test_open_shard_http_server_stopped_mid_shard(
    http_server: HTTPFileServer,
) -> None:
    url = http_shard(http_server)
    stream = open_shard(url, len(DATA), SHA256, http_options(max_retries=1))
    assert stream.read(BLOCK) == DATA[:BLOCK]
    http_server.stop()
    with pytest.raises(ShardError, match=rf"shard {url} .* failed after 2 attempts"):
        stream.read()


def test_open_shard_server_without_range_support(tmp_path: Path) -> None:
    server = HTTPFileServer(tmp_path, ranges=False)
    server.start()
    try:
        (tmp_path / "small.tar").write_bytes(DATA)
        url = f"{server.url}/small.tar"
        # A file that fits in one block needs no range request beyond the first.
        assert open_shard(url, len(DATA), SHA256, http_options(block_size=8192)).read() == DATA
        with pytest.raises(ShardError, match="the server ignored the Range header"):
            open_shard(url, len(DATA), SHA256, http_options()).read()
    finally:
        server.stop()


def test_open_shard_missing_http_file(http_server: HTTPFileServer) -> None:
    url = f"{http_server.url}/lfw/lfw-000003.tar"
    with pytest.raises(ShardError, match=rf"^shard {url} not found$"):
        open_shard(url, 10, SHA256, http_options()).read()
    assert len(http_server.plan.requests_for("lfw-000003.tar")) == 1


def test_open_shard_forbidden_http_file_is_not_retried(http_server: HTTPFileServer) -> None:
    url = http_shard(http_server)
    http_server.plan.fail("lfw-000000.tar", status=403, times=10)
    with pytest.raises(ShardError, match="403"):
        open_shard(url, len(DATA), SHA256, http_options()).read()
    assert len(http_server.plan.requests_for("lfw-000000.tar")) == 1


def test_open_read_streams_remote_file(s3_server: S3Server, s3_bucket: str) -> None:
    url = s3_shard(s3_server, s3_bucket)
    with open_read(url, s3_server.options(block_size=BLOCK)) as f:
        assert f.read() == DATA


def test_open_read_missing_remote_file(
    s3_server: S3Server, s3_bucket: str, http_server: HTTPFileServer
) -> None:
    with pytest.raises(FileNotFoundError):
        open_read(f"{s3_bucket}/nothing.json", s3_server.options())
    with pytest.raises(FileNotFoundError):
        open_read(f"{http_server.url}/nothing.json", http_options())


def test_open_read_uses_endpoint_from_environment(s3_server: S3Server, s3_bucket: str) -> None:
    # The fixture sets AWS_ENDPOINT_URL; the options name no endpoint.
    url = s3_shard(s3_server, s3_bucket)
    with open_read(url, StorageOptions(block_size=BLOCK)) as f:
        assert f.read() == DATA


def test_open_read_uses_profile_endpoint_and_credentials(
    s3_server: S3Server, s3_bucket: str, aws_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_shard(s3_server, s3_bucket)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (aws_environment / "config").write_text(
        f"[profile minio]\nregion = us-east-1\nendpoint_url = {s3_server.endpoint_url}\n"
    )
    (aws_environment / "credentials").write_text(
        "[minio]\naws_access_key_id = profile-key\naws_secret_access_key = profile-secret\n"
    )
    with open_read(url, StorageOptions(profile="minio")) as f:
        assert f.read() == DATA


def test_open_shard_anonymous_reads_public_bucket_only(s3_server: S3Server, s3_bucket: str) -> None:
    url = s3_shard(s3_server, s3_bucket)
    anonymous = s3_server.options(anon=True)
    with pytest.raises(ShardError, match="PermissionError"):
        open_shard(url, len(DATA), SHA256, anonymous).read()
    fs = fsspec.filesystem("s3", endpoint_url=s3_server.endpoint_url)
    fs.chmod(url, acl="public-read")
    assert open_shard(url, len(DATA), SHA256, anonymous).read() == DATA


def test_open_atomic_write_publishes_s3_object_on_success(
    s3_server: S3Server, s3_bucket: str
) -> None:
    url = f"{s3_bucket}/out/lfw.json"
    with open_atomic_write(url, s3_server.options()) as f:
        f.write(b"{}")
    fs, path = url_to_fs(url, s3_server.options())
    assert fs.cat_file(path) == b"{}"


def test_open_atomic_write_leaves_nothing_on_error(s3_server: S3Server, s3_bucket: str) -> None:
    url = f"{s3_bucket}/out/lfw-000000.tar"
    with (
        pytest.raises(RuntimeError, match="converter failed"),
        open_atomic_write(url, s3_server.options()) as f,
    ):
        f.write(DATA)
        raise RuntimeError("converter failed")
    fs, path = url_to_fs(url, s3_server.options())
    assert not fs.exists(path)
    uploads = fs.call_s3("list_multipart_uploads", Bucket=s3_bucket.removeprefix("s3://"))
    assert uploads.get("Uploads", []) == []


def test_open_atomic_write_missing_bucket_raises_storage_error(s3_server: S3Server) -> None:
    url = "s3://binconv-no-such-bucket/out/lfw.json"
    with (
        pytest.raises(StorageError, match=f"writing {url} failed"),
        open_atomic_write(url, s3_server.options()) as f,
    ):
        f.write(b"{}")


def test_open_atomic_write_rejects_http(http_server: HTTPFileServer) -> None:
    with (
        pytest.raises(StorageError, match="read-only"),
        open_atomic_write(f"{http_server.url}/x.json", http_options()) as f,
    ):
        f.write(b"{}")


def test_url_to_fs_names_missing_extra() -> None:
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed, so gs:// URLs open")
    with pytest.raises(StorageError, match=r"pip install 'binconv\[gcs\]'"):
        url_to_fs("gs://bucket/lfw/lfw.json")


def test_loopback_guard_rejects_other_hosts(loopback_only: None) -> None:
    # The guard raises before any lookup or connection, so nothing is sent.
    with pytest.raises(pytest.fail.Exception, match=r"tried to reach example\.org"):
        socket.getaddrinfo("example.org", 443)
    # 192.0.2.0/24 is reserved for documentation (RFC 5737).
    expected = r"tried to reach 192\.0\.2\.1"
    with socket.socket() as sock, pytest.raises(pytest.fail.Exception, match=expected):
        sock.connect(("192.0.2.1", 9))
