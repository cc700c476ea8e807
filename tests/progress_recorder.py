"""A progress receiver for tests: records every stage and can act after each item."""

from __future__ import annotations

from collections.abc import Callable


class RecordingProgress:
    """Records the stages that a library function reports, as `ConvertProgress` receives them.

    Args:
        after_item: Called with the stage name and the count so far after
            each item, for example to change a file at a chosen moment.
    """

    def __init__(self, after_item: Callable[[str, int], None] | None = None) -> None:
        self.after_item = after_item
        self.started: list[tuple[str, int]] = []
        self.finished: list[tuple[str, int]] = []
        self._count = 0

    def start(self, name: str, num_pairs: int) -> None:
        self.started.append((name, num_pairs))
        self._count = 0

    def advance(self) -> None:
        self._count += 1
        if self.after_item is not None:
            self.after_item(self.started[-1][0], self._count)

    def finish(self) -> None:
        self.finished.append((self.started[-1][0], self._count))
