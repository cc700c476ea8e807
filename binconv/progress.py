"""The progress callback type that long-running library functions accept."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress"]

# Called once per stage with a description and the number of items of the
# stage; returns a callback that the function calls after each item. The
# CLI passes `binconv.commands.progress.ProgressBars`.
Progress = Callable[[str, int], Callable[[], None]]
