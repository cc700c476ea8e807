"""Retrying remote calls that fail for transient reasons, with backoff and a log line per retry."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from .errors import BinconvError, StorageError
from .storage_options import StorageOptions

__all__ = ["call_with_retries", "is_transient", "retry_delays"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that retrying cannot fix, even when a transient error caused them.
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)

# HTTP statuses that mean "try again later": request timeout, throttling, server errors.
_TRANSIENT_STATUSES = frozenset({408, 429})

# errno values of OSErrors from sockets, and those s3fs gives S3 error codes
# 500 InternalError (EREMOTEIO) and 503 SlowDown or 409 OperationAborted (EBUSY).
_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EAGAIN",
        "EBUSY",
        "ECONNABORTED",
        "ECONNREFUSED",
        "ECONNRESET",
        "EPIPE",
        "EREMOTEIO",
        "ETIMEDOUT",
    )
    if hasattr(errno, name)
)


def is_transient(exc: BaseException) -> bool:
    """Return whether `exc` is a failure that the same request may not hit again.

    Connection errors, timeouts, truncated response bodies, HTTP 5xx, 408 and
    429, and S3 throttling count as transient. A missing object, a denied
    request and every other HTTP 4xx do not. The exception's `__cause__`
    chain is searched too, because s3fs wraps botocore errors in OSErrors.
    """
    if isinstance(exc, _PERMANENT):
        return False
    for current in _cause_chain(exc):
        verdict = _classify(current)
        if verdict is not None:
            return verdict
    return False


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _classify(exc: BaseException) -> bool | None:
    status = _http_status(exc)
    if status is not None:
        return status >= 500 or status in _TRANSIENT_STATUSES
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    if type(exc).__module__.startswith(("aiohttp", "botocore", "urllib3", "fsspec")):
        return _is_transport_error(exc)
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    # Anything else is decided by its cause, if it has one: s3fs raises
    # OSError(EIO) for S3 errors it has no errno for, such as 502.
    return None


def _http_status(exc: BaseException) -> int | None:
    """Return the HTTP status an error carries, from aiohttp, botocore or gcsfs, if any."""
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)  # botocore.exceptions.ClientError
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    code = getattr(exc, "code", None)  # gcsfs.retry.HttpError
    if type(exc).__name__ == "HttpError" and isinstance(code, int):
        return code
    return None


def _is_transport_error(exc: BaseException) -> bool | None:
    # Matched by class name so that none of these optional libraries must be
    # installed: aiohttp (ClientConnectionError, ServerDisconnectedError,
    # ClientPayloadError), botocore (EndpointConnectionError,
    # ConnectionClosedError, ReadTimeoutError, IncompleteReadError,
    # ResponseStreamingError) and fsspec (FSTimeoutError).
    names = {cls.__name__ for cls in type(exc).__mro__}
    transport = {
        "ClientConnectionError",
        "ClientPayloadError",
        "ServerDisconnectedError",
        "HTTPClientError",
        "ConnectionError",
        "IncompleteReadError",
        "ResponseStreamingError",
        "FSTimeoutError",
        "ProtocolError",
    }
    return True if names & transport else None


def retry_delays(options: StorageOptions) -> Iterator[float]:
    """Yield the wait before each of the `options.max_retries` retries, in seconds.

    The waits grow exponentially and are scaled by a random factor between
    0.5 and 1, so that many ranks hitting the same error do not retry in step.
    """
    delay = options.retry_delay_s
    for _ in range(options.max_retries):
        yield min(delay, options.max_retry_delay_s) * random.uniform(0.5, 1.0)
        delay *= 2


def call_with_retries(
    call: Callable[[], T],
    description: str,
    options: StorageOptions,
    error: type[BinconvError] = StorageError,
) -> T:
    """Return `call()`, retrying it after transient errors as `options` allow.

    Args:
        call: The request to make.
        description: What the call does, for log lines and errors (`reading s3://b/x.tar`).
        options: Number of retries and waits between them.
        error: Exception raised when every attempt failed.

    Raises:
        BinconvError: Of type `error`, when the last allowed attempt failed
            with a transient error.
        Exception: The call's own error, unchanged, when it is not transient.
    """
    attempts = options.max_retries + 1
    delays = retry_delays(options)
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                message = f"{description} failed after {attempts} attempts: {_describe(exc)}"
                raise error(message) from exc
            delay = next(delays)
            logger.warning(
                "%s failed (%s); retry %d of %d in %.2f s",
                description,
                _describe(exc),
                attempt,
                options.max_retries,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "no message"
    status = next(filter(None, map(_http_status, _cause_chain(exc))), None)
    if status is not None and str(status) not in text:
        return f"{type(exc).__name__}: HTTP {status}: {text}"
    return f"{type(exc).__name__}: {text}"
