"""Settings for reaching object stores and HTTP servers: endpoints, credentials, retries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import StorageError

__all__ = [
    "StorageOptions",
    "canonical_protocol",
    "configure_storage",
    "filesystem_kwargs",
    "get_storage_options",
    "parse_storage_options",
]

# fsspec protocol names that binconv gives settings for, mapped to the name
# used in `StorageOptions.extra` keys and `--storage-option` prefixes.
_PROTOCOL_ALIASES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "http": "http",
    "https": "http",
}


@dataclass(frozen=True)
class StorageOptions:
    """Settings for reaching remote locations.

    Every field left at its default defers to the usual configuration of the
    underlying client. For S3, botocore reads `AWS_ENDPOINT_URL_S3`,
    `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE` and the files under
    `~/.aws/`. For GCS, gcsfs uses Application Default Credentials.

    Attributes:
        s3_endpoint_url: S3 API endpoint, such as `http://minio.local:9000` for
            MinIO or `https://ACCOUNT.r2.cloudflarestorage.com` for R2. None
            lets botocore choose.
        anon: Access S3 and GCS without credentials, for public buckets.
        profile: AWS profile name in `~/.aws/config`; None uses `AWS_PROFILE`
            or the default profile.
        extra: Further fsspec filesystem arguments per protocol (`s3`, `gcs`,
            `http`), such as `{"s3": {"requester_pays": True}}`. They are
            applied last, so they override the fields above.
        max_retries: Number of times a remote read is retried after a
            transient error (connection reset or refused, timeout, HTTP 5xx,
            throttling) before it fails.
        retry_delay_s: Seconds to wait before the first retry. Each further
            retry waits twice as long, up to `max_retry_delay_s`.
        max_retry_delay_s: Upper bound of the wait between two retries, in seconds.
        timeout_s: Seconds to wait for a connection, or for the next bytes of
            a response, before the attempt counts as failed.
        block_size: Bytes fetched per request when streaming a remote file.
    """

    s3_endpoint_url: str | None = None
    anon: bool = False
    profile: str | None = None
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_retries: int = 5
    retry_delay_s: float = 0.5
    max_retry_delay_s: float = 20.0
    timeout_s: float = 60.0
    block_size: int = 8 * 2**20

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise StorageError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.block_size < 1:
            raise StorageError(f"block_size must be at least 1 byte, got {self.block_size}")
        unknown = sorted(set(self.extra) - set(_PROTOCOL_ALIASES.values()))
        if unknown:
            raise StorageError(
                f"storage options for unknown protocol {unknown[0]!r}; "
                f"use one of {sorted(set(_PROTOCOL_ALIASES.values()))}"
            )


_current = StorageOptions()


def configure_storage(options: StorageOptions) -> None:
    """Make `options` the default for every later storage call in this process.

    Calls that take an explicit `options` argument ignore the default. Worker
    processes started with the `spawn` method do not inherit it, so pass
    options explicitly to code that runs there.
    """
    global _current
    _current = options


def get_storage_options() -> StorageOptions:
    """Return the options set by `configure_storage`, or the defaults."""
    return _current


def canonical_protocol(protocol: str) -> str | None:
    """Return the settings name (`s3`, `gcs`, `http`) of an fsspec protocol, or None."""
    return _PROTOCOL_ALIASES.get(protocol)


def parse_storage_options(
    items: Iterable[str], base: StorageOptions | None = None
) -> StorageOptions:
    """Add `PROTOCOL.KEY=VALUE` settings, as given on the command line, to `base`.

    VALUE is read as JSON when it is valid JSON (`true`, `3`, `{"region_name": "eu"}`),
    and as a plain string otherwise.

    Raises:
        StorageError: An item is not of the form `PROTOCOL.KEY=VALUE`, or names
            a protocol other than s3, gcs or http.
    """
    base = base or StorageOptions()
    extra = {protocol: dict(values) for protocol, values in base.extra.items()}
    for item in items:
        name, sep, text = item.partition("=")
        protocol, dot, key = name.partition(".")
        canonical = canonical_protocol(protocol.strip())
        if not sep or not dot or not key.strip():
            raise StorageError(
                f"invalid storage option {item!r}: expected PROTOCOL.KEY=VALUE, "
                "such as s3.requester_pays=true"
            )
        if canonical is None:
            raise StorageError(
                f"invalid storage option {item!r}: unknown protocol {protocol!r}; "
                "use s3, gcs or http"
            )
        extra.setdefault(canonical, {})[key.strip()] = _parse_value(text)
    return replace(base, extra=extra)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def filesystem_kwargs(protocol: str, options: StorageOptions, *, retry: bool) -> dict[str, Any]:
    """Return the fsspec filesystem arguments for `protocol` under `options`.

    Args:
        protocol: fsspec protocol of the URL (`s3`, `gs`, `https`, `file`, ...).
        options: The settings to apply.
        retry: Whether the client library may retry failed requests itself.
            Reads pass False, because binconv retries them and logs each retry.
    """
    canonical = canonical_protocol(protocol)
    if canonical == "s3":
        kwargs = _s3_kwargs(options, retry=retry)
    elif canonical == "gcs":
        kwargs = {"token": "anon"} if options.anon else {}
    elif canonical == "http":
        kwargs = _http_kwargs(options)
    else:
        return {}
    if canonical in ("s3", "gcs"):
        # s3fs and gcsfs cache folder listings per filesystem instance, and
        # info() consults them. Reads and writes use separate instances (see
        # `retry`), and other processes write too, so a cached listing can
        # claim that a new object is missing.
        kwargs["use_listings_cache"] = False
    kwargs.update(options.extra.get(canonical, {}))
    return kwargs


def _s3_kwargs(options: StorageOptions, *, retry: bool) -> dict[str, Any]:
    config: dict[str, Any] = {
        "connect_timeout": options.timeout_s,
        "read_timeout": options.timeout_s,
    }
    if not retry:
        config["retries"] = {"total_max_attempts": 1}
    kwargs: dict[str, Any] = {"config_kwargs": config}
    if options.s3_endpoint_url is not None:
        kwargs["endpoint_url"] = options.s3_endpoint_url
    if options.anon:
        kwargs["anon"] = True
    if options.profile is not None:
        kwargs["profile"] = options.profile
    return kwargs


def _http_kwargs(options: StorageOptions) -> dict[str, Any]:
    # fsspec's HTTP filesystem needs aiohttp, so aiohttp is present whenever
    # these arguments are used; importing it here keeps it an optional extra.
    try:
        import aiohttp
    except ImportError:
        return {}
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=options.timeout_s, sock_read=options.timeout_s
    )
    return {"client_kwargs": {"timeout": timeout}}
