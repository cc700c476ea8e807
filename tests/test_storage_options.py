"""Tests for binconv.storage_options: parsing settings and turning them into fsspec arguments."""

from __future__ import annotations

import pytest

from binconv.errors import StorageError
from binconv.storage_options import (
    StorageOptions,
    configure_storage,
    filesystem_kwargs,
    get_storage_options,
    parse_storage_options,
)


def test_parse_storage_options_reads_json_values() -> None:
    options = parse_storage_options(
        [
            "s3.requester_pays=true",
            "s3.max_concurrency=4",
            's3.client_kwargs={"region_name": "eu-west-1"}',
            "https.headers.x=ignored-key-part",
        ]
    )
    assert options.extra["s3"]["requester_pays"] is True
    assert options.extra["s3"]["max_concurrency"] == 4
    assert options.extra["s3"]["client_kwargs"] == {"region_name": "eu-west-1"}
    assert options.extra["http"]["headers.x"] == "ignored-key-part"


def test_parse_storage_options_keeps_plain_strings() -> None:
    options = parse_storage_options(["gs.project=my-project", "s3a.key=AKIA=with=equals"])
    assert options.extra["gcs"]["project"] == "my-project"
    assert options.extra["s3"]["key"] == "AKIA=with=equals"


def test_parse_storage_options_keeps_base_fields() -> None:
    base = StorageOptions(s3_endpoint_url="http://127.0.0.1:9", anon=True)
    options = parse_storage_options(["s3.use_ssl=false"], base)
    assert options.s3_endpoint_url == "http://127.0.0.1:9"
    assert options.anon is True
    assert options.extra == {"s3": {"use_ssl": False}}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("requester_pays=true", "expected PROTOCOL.KEY=VALUE"),
        ("s3.requester_pays", "expected PROTOCOL.KEY=VALUE"),
        ("s3.=1", "expected PROTOCOL.KEY=VALUE"),
        ("ftp.user=me", "unknown protocol 'ftp'"),
    ],
)
def test_parse_storage_options_rejects_invalid_items(item: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        parse_storage_options([item])


def test_storage_options_rejects_unknown_protocol_in_extra() -> None:
    with pytest.raises(StorageError, match="unknown protocol 'ftp'"):
        StorageOptions(extra={"ftp": {"user": "me"}})


def test_storage_options_rejects_negative_retries() -> None:
    with pytest.raises(StorageError, match="max_retries"):
        StorageOptions(max_retries=-1)


def test_filesystem_kwargs_for_s3_fields() -> None:
    options = StorageOptions(
        s3_endpoint_url="http://127.0.0.1:9000", anon=True, profile="minio", timeout_s=7.0
    )
    kwargs = filesystem_kwargs("s3", options, retry=True)
    assert kwargs["endpoint_url"] == "http://127.0.0.1:9000"
    assert kwargs["anon"] is True
    assert kwargs["profile"] == "minio"
    assert kwargs["config_kwargs"] == {"connect_timeout": 7.0, "read_timeout": 7.0}
    assert kwargs["use_listings_cache"] is False


def test_filesystem_kwargs_without_retry_allows_one_botocore_attempt() -> None:
    kwargs = filesystem_kwargs("s3a", StorageOptions(), retry=False)
    assert kwargs["config_kwargs"]["retries"] == {"total_max_attempts": 1}
    assert "endpoint_url" not in kwargs
    assert "anon" not in kwargs


def test_filesystem_kwargs_extra_overrides_fields() -> None:
    options = StorageOptions(
        s3_endpoint_url="http://127.0.0.1:1", extra={"s3": {"endpoint_url": "http://127.0.0.1:2"}}
    )
    assert filesystem_kwargs("s3", options, retry=True)["endpoint_url"] == "http://127.0.0.1:2"


def test_filesystem_kwargs_for_gcs_anon_and_local() -> None:
    assert filesystem_kwargs("gs", StorageOptions(anon=True), retry=True) == {
        "token": "anon",
        "use_listings_cache": False,
    }
    assert filesystem_kwargs("gcs", StorageOptions(), retry=True) == {"use_listings_cache": False}
    assert filesystem_kwargs("file", StorageOptions(anon=True), retry=True) == {}


def test_filesystem_kwargs_for_http_sets_timeouts() -> None:
    kwargs = filesystem_kwargs("https", StorageOptions(timeout_s=3.0), retry=False)
    timeout = kwargs["client_kwargs"]["timeout"]
    assert timeout.sock_connect == 3.0
    assert timeout.sock_read == 3.0
    assert timeout.total is None


def test_configure_storage_sets_process_default() -> None:
    previous = get_storage_options()
    try:
        configure_storage(StorageOptions(profile="team"))
        assert get_storage_options().profile == "team"
    finally:
        configure_storage(previous)
