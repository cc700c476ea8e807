"""A tqdm progress bar per dataset for the commands that write datasets."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["TqdmProgress", "progress_enabled"]


def progress_enabled(quiet: bool) -> bool:
    """Return whether to draw progress bars: not when `quiet` or when stderr is not a terminal."""
    return not quiet and sys.stderr.isatty()


class TqdmProgress:
    """Draws one tqdm bar on stderr for each dataset that is written or stage that starts.

    Args:
        unit: The counted item shown in the rate: pairs by default, or "" for
            a plain "/s" in commands whose stages count different items.
    """

    def __init__(self, unit: str = "pair") -> None:
        self._bar: tqdm[None] | None = None
        self._unit = unit

    def start(self, name: str, num_pairs: int) -> None:
        self._bar = tqdm(total=num_pairs, desc=name, unit=self._unit, file=sys.stderr, leave=False)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
