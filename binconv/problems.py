"""Collecting the problems of one input so that they are all reported in one error."""

from __future__ import annotations

from collections import defaultdict

from .errors import PairListError

__all__ = ["MAX_LISTED_PER_KIND", "ProblemReport"]

# Enough to show a pattern (a renamed folder, a wrong extension) without
# burying the other kinds of problem under thousands of lines.
MAX_LISTED_PER_KIND = 20


class ProblemReport:
    """Problems found in one input, grouped by kind, in the order they were found.

    Args:
        source: Name of the input, the first word of the error message.
        max_listed: How many problems of each kind the message lists; the
            rest are counted.
    """

    def __init__(self, source: str, max_listed: int = MAX_LISTED_PER_KIND) -> None:
        self.source = source
        self.max_listed = max_listed
        self._by_kind: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)

    def add(self, kind: str, message: str, line: int = 0) -> None:
        """Record one problem.

        Args:
            kind: A plural noun such as "malformed lines".
            message: The problem, naming its line or file.
            line: Line number that orders problems of one kind; 0 lists the
                problem before those with a line.
        """
        self._by_kind[kind].append((line, message))

    def __len__(self) -> int:
        return sum(len(messages) for messages in self._by_kind.values())

    @property
    def problems(self) -> tuple[str, ...]:
        """All problems, kind by kind in the order the kinds were first seen, each kind by line."""
        return tuple(message for messages in self._sorted().values() for message in messages)

    def _sorted(self) -> dict[str, list[str]]:
        # sorted() is stable: problems of one line keep the order they were found in.
        return {
            kind: [message for _, message in sorted(found, key=lambda item: item[0])]
            for kind, found in self._by_kind.items()
        }

    def raise_if_any(self, context: str = "") -> None:
        """Raise one `PairListError` listing the problems, if there are any.

        Args:
            context: Extra words after the source name, such as the image folder.

        Raises:
            PairListError: At least one problem was recorded.
        """
        if not self._by_kind:
            return
        count = len(self)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{self.source}{context}: {count} {noun} found, nothing was written:"]
        for kind, messages in self._sorted().items():
            lines.extend(f"  {message}" for message in messages[: self.max_listed])
            hidden = len(messages) - self.max_listed
            if hidden > 0:
                lines.append(f"  ... and {hidden} more {kind}")
        raise PairListError("\n".join(lines), self.problems)
