"""tqdm progress bars for the progress callbacks of the library functions."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from tqdm import tqdm

__all__ = ["ProgressBars"]


class ProgressBars:
    """One tqdm bar per stage of a command, on stderr, all closed when the command ends.

    Use an instance as a `progress` argument: it is called with a stage
    description and the number of items, and returns the callback that
    advances that stage's bar by one.

    Args:
        quiet: Show no bars. Without it, bars are shown only when stderr is
            a terminal.
    """

    def __init__(self, quiet: bool) -> None:
        self._disable: bool | None = True if quiet else None  # None: only on a terminal
        self._bars: list[tqdm] = []

    def __call__(self, description: str, total: int) -> Callable[[], None]:
        bar = tqdm(total=total, desc=description, disable=self._disable, leave=False)
        self._bars.append(bar)

        def advance() -> None:
            bar.update()

        return advance

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for bar in self._bars:
            bar.close()
