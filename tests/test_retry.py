"""Tests for binconv.retry: which errors are transient, and bounded, logged retries."""

from __future__ import annotations

import errno
import logging

import aiohttp
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from multidict import CIMultiDict, CIMultiDictProxy
from s3fs.errors import translate_boto_error
from yarl import URL

from binconv.errors import ShardError, StorageError
from binconv.retry import call_with_retries, is_transient, retry_delays
from binconv.storage_options import StorageOptions

FAST = StorageOptions(max_retries=3, retry_delay_s=0.001, max_retry_delay_s=0.002)


def s3_client_error(status: int, code: str) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": f"test {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


def http_error(status: int) -> aiohttp.ClientResponseError:
    url = URL("http://127.0.0.1:1/x.tar")
    request = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(request, (), status=status, message="test")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        TimeoutError("timed out"),
        OSError(errno.EBUSY, "busy"),
        s3_client_error(500, "InternalError"),
        s3_client_error(503, "SlowDown"),
        translate_boto_error(s3_client_error(500, "InternalError")),
        translate_boto_error(s3_client_error(503, "SlowDown")),
        translate_boto_error(s3_client_error(502, "BadGateway")),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1/x"),
        http_error(500),
        http_error(503),
        http_error(429),
        aiohttp.ClientPayloadError("body ended early"),
        aiohttp.ServerDisconnectedError(),
    ],
    ids=repr,
)
def test_is_transient_for_network_and_server_errors(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError("no such key"),
        PermissionError("denied"),
        translate_boto_error(s3_client_error(404, "NoSuchKey")),
        translate_boto_error(s3_client_error(403, "AccessDenied")),
        translate_boto_error(s3_client_error(416, "InvalidRange")),
        s3_client_error(400, "InvalidArgument"),
        http_error(404),
        http_error(403),
        http_error(416),
        OSError(errno.EINVAL, "invalid"),
        ValueError("not a network error"),
    ],
    ids=repr,
)
def test_is_transient_false_for_permanent_errors(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_call_with_retries_recovers_and_logs_each_retry(caplog: pytest.LogCaptureFixture) -> None:
    failures = [ConnectionResetError("reset 1"), http_error(503)]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "payload"

    with caplog.at_level(logging.WARNING, logger="binconv.retry"):
        assert call_with_retries(flaky, "reading s3://bkt/x.tar", FAST) == "payload"
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "reading s3://bkt/x.tar failed" in messages[0]
    assert "ConnectionResetError: reset 1" in messages[0]
    assert "retry 1 of 3" in messages[0]
    assert "retry 2 of 3" in messages[1]


def test_call_with_retries_gives_up_after_max_retries() -> None:
    calls = []

    def always_down() -> None:
        calls.append(1)
        raise ConnectionRefusedError("refused")

    with pytest.raises(ShardError, match=r"reading shard x failed after 4 attempts") as info:
        call_with_retries(always_down, "reading shard x", FAST, ShardError)
    assert len(calls) == 4
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_call_with_retries_raises_permanent_error_at_once() -> None:
    calls = []

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("s3://bkt/x.tar")

    with pytest.raises(FileNotFoundError):
        call_with_retries(missing, "reading x", FAST)
    assert len(calls) == 1


def test_call_with_retries_zero_retries_tries_once() -> None:
    calls = []

    def down() -> None:
        calls.append(1)
        raise ConnectionResetError("reset")

    options = StorageOptions(max_retries=0)
    with pytest.raises(StorageError, match="after 1 attempts"):
        call_with_retries(down, "reading x", options)
    assert len(calls) == 1


def test_retry_delays_double_and_stay_under_cap() -> None:
    options = StorageOptions(max_retries=6, retry_delay_s=1.0, max_retry_delay_s=5.0)
    delays = list(retry_delays(options))
    assert len(delays) == 6
    bounds = [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    for delay, bound in zip(delays, bounds, strict=True):
        assert bound * 0.5 <= delay <= bound
