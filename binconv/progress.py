"""Reporting one stage of a long-running library function to a `ConvertProgress`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .convert import ConvertProgress

__all__ = ["progress_stage"]


@contextlib.contextmanager
def progress_stage(
    progress: ConvertProgress | None, name: str, total: int
) -> Iterator[Callable[[], None] | None]:
    """Start stage `name` of `total` items and yield the callback that counts one item.

    The stage is finished when the block ends, even by an exception. Without
    `progress`, the block gets None.
    """
    if progress is None:
        yield None
        return
    progress.start(name, total)
    try:
        yield progress.advance
    finally:
        progress.finish()
