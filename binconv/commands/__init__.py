"""Helpers shared by the CLI commands, which live one per module in this package."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from ..errors import BinconvError

__all__ = ["configure_logging", "exits_on_error"]

P = ParamSpec("P")
R = TypeVar("R")


def exits_on_error(command: Callable[P, R]) -> Callable[P, R]:
    """Turn `BinconvError` into one line on stderr and the error's exit status.

    Errors of other kinds are bugs and keep their traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except BinconvError as exc:
            typer.echo(f"binconv: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("binconv: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def configure_logging(verbose: bool) -> None:
    """Send library log records to stderr: warnings by default, everything with `verbose`."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
