"""Options of the `binconv` command itself that set how commands reach remote locations."""

from __future__ import annotations

from typing import Annotated

import typer

from ..storage_options import StorageOptions, configure_storage, parse_storage_options
from . import exits_on_error

__all__ = ["storage_callback"]


@exits_on_error
def storage_callback(
    s3_endpoint: Annotated[
        str | None,
        typer.Option(
            "--s3-endpoint",
            help="S3 API endpoint for s3:// URLs, such as http://minio.local:9000 (MinIO) or "
            "https://ACCOUNT.r2.cloudflarestorage.com (R2). Default: AWS_ENDPOINT_URL_S3, "
            "AWS_ENDPOINT_URL, the profile's endpoint_url, else AWS.",
            show_default=False,
        ),
    ] = None,
    anon: Annotated[
        bool,
        typer.Option("--anon", help="Access s3:// and gs:// URLs without credentials."),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="AWS profile in ~/.aws/config for s3:// URLs. Default: AWS_PROFILE.",
            show_default=False,
        ),
    ] = None,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-option",
            help="Further fsspec filesystem argument as PROTOCOL.KEY=VALUE, such as "
            "s3.requester_pays=true; VALUE is read as JSON if it is valid JSON. Repeatable.",
            show_default=False,
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            min=0, help="Number of retries of a remote read after a transient network error."
        ),
    ] = StorageOptions.max_retries,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds to wait for a connection or for the next bytes of a response.",
        ),
    ] = StorageOptions.timeout_s,
) -> None:
    """Set how every command reaches s3://, gs://, http:// and https:// locations."""
    base = StorageOptions(
        s3_endpoint_url=s3_endpoint,
        anon=anon,
        profile=profile,
        max_retries=retries,
        timeout_s=timeout,
    )
    configure_storage(parse_storage_options(storage_option or [], base))
