"""A tqdm progress bar per dataset for the commands that write datasets."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["TqdmProgress", "progress_enabled"]


def progress_enabled(quiet: bool) -> bool:
    """Return whether to draw progress bars: not when `quiet` or when stderr is not a terminal."""
    return not quiet and sys.stderr.isatty()


class TqdmProgress:
    """Draws one tqdm bar on stderr for each dataset that is written, counting pairs."""

    def __init__(self) -> None:
        self._bar: tqdm[None] | None = None

    def start(self, name: str, num_pairs: int) -> None:
        self._bar = tqdm(total=num_pairs, desc=name, unit="pair", file=sys.stderr, leave=False)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
