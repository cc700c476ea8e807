"""Parsing pair lists: LFW `pairs.txt` files and CSV or TSV files of `path1, path2, label`."""

from __future__ import annotations

import csv
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import PairListError
from .problems import ProblemReport

__all__ = [
    "PAIR_LIST_FORMATS",
    "PairEntry",
    "PairList",
    "decode_pair_list",
    "detect_format",
    "parse_pair_list",
]

PAIR_LIST_FORMATS = ("auto", "lfw", "csv", "tsv")

_DELIMITERS = {"csv": ",", "tsv": "\t"}
_LABELS = {"1": True, "true": True, "same": True, "0": False, "false": False, "diff": False}
_LABEL_CHOICES = "1, 0, true, false, same or diff"
_LFW_HEADER = re.compile(r"\d+(\s+\d+)?")
_MALFORMED = "malformed lines"
_COUNTS = "count problems"
_IMAGE_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PairEntry:
    """One pair of a pair list.

    Attributes:
        path1: First image, relative to the image folder, with `/` separators.
        path2: Second image, likewise.
        issame: Whether both images show the same person.
        line: 1-based line number of the pair in the list.
    """

    path1: str
    path2: str
    issame: bool
    line: int


@dataclass(frozen=True)
class PairList:
    """The pairs of a parsed list, in list order.

    Attributes:
        format: `lfw`, `csv` or `tsv`.
        entries: The well-formed pairs. Malformed lines are left out and
            recorded in the `ProblemReport` passed to `parse_pair_list`.
        num_sets: Number of sets an LFW header announces, or None.
    """

    format: str
    entries: tuple[PairEntry, ...]
    num_sets: int | None = None


def decode_pair_list(data: bytes, source: str) -> str:
    """Decode the bytes of a pair list as UTF-8, with or without a byte order mark.

    Raises:
        PairListError: The bytes are not UTF-8 text.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PairListError(
            f"{source}: not a UTF-8 text file (invalid byte at offset {exc.start}); "
            "a pair list is a text file of image names or paths and labels"
        ) from None


def detect_format(source: str, text: str) -> str:
    """Guess the format of a pair list from its file extension, then from its first line.

    `.csv` and `.tsv` files are CSV and TSV. Otherwise a first line of one or
    two integers (an LFW header) or of LFW pair fields means `lfw`, and a
    first line with a tab or a comma means `tsv` or `csv`.

    Raises:
        PairListError: The list is empty or its format cannot be detected.
    """
    extension = posixpath.splitext(source)[1].lower().lstrip(".")
    if extension in _DELIMITERS:
        return extension
    first = next((line.strip() for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise PairListError(f"{source}: the pair list is empty")
    if _LFW_HEADER.fullmatch(first) or _looks_like_lfw_pair(first.split()):
        return "lfw"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise PairListError(
        f"{source}: cannot detect the pair list format from its first line {first!r}; "
        "pass --format lfw, csv or tsv"
    )


def _looks_like_lfw_pair(fields: Sequence[str]) -> bool:
    if len(fields) == 3:
        numbers = fields[1:]
    elif len(fields) == 4:
        numbers = [fields[1], fields[3]]
    else:
        return False
    return all(_IMAGE_NUMBER.fullmatch(number) for number in numbers)


def parse_pair_list(
    text: str,
    report: ProblemReport,
    list_format: str = "auto",
    lfw_extension: str = "jpg",
) -> PairList:
    """Parse the text of a pair list, recording every problem in `report`.

    Args:
        text: The decoded pair list.
        report: Receives malformed lines, bad labels and count mismatches;
            its `source` names the list in messages and picks the format
            when `list_format` is `auto`.
        list_format: `lfw`, `csv`, `tsv`, or `auto` to use `detect_format`.
        lfw_extension: Extension of the image files an LFW list names, without the dot.

    Raises:
        PairListError: The format is unknown or cannot be detected. Problems
            inside the list do not raise; they go to `report`.
    """
    if list_format == "auto":
        list_format = detect_format(report.source, text)
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    lines = [(number, line) for number, line in lines if line]
    if list_format == "lfw":
        entries, num_sets = _parse_lfw(lines, report, lfw_extension)
        return PairList("lfw", tuple(entries), num_sets)
    if list_format in _DELIMITERS:
        entries = _parse_delimited(lines, _DELIMITERS[list_format], report)
        return PairList(list_format, tuple(entries))
    raise PairListError(
        f"{report.source}: unknown pair list format {list_format!r}; "
        f"expected one of {', '.join(PAIR_LIST_FORMATS)}"
    )


@dataclass(frozen=True)
class _LfwHeader:
    num_sets: int
    pairs_per_set: int  # matched pairs per set; as many mismatched pairs follow them
    line: int


def _parse_lfw(
    lines: list[tuple[int, str]], report: ProblemReport, extension: str
) -> tuple[list[PairEntry], int | None]:
    header, body = _split_lfw_header(lines, report)
    entries = []
    issame_by_line: list[bool | None] = []
    for number, line in body:
        entry = _parse_lfw_line(number, line, extension, report)
        issame_by_line.append(None if entry is None else entry.issame)
        if entry is not None:
            entries.append(entry)
    if not body:
        report.add(_MALFORMED, "the list has no pairs")
    elif header is not None:
        _check_lfw_counts(header, issame_by_line, [number for number, _ in body], report)
    return entries, None if header is None else header.num_sets


def _split_lfw_header(
    lines: list[tuple[int, str]], report: ProblemReport
) -> tuple[_LfwHeader | None, list[tuple[int, str]]]:
    # `pairs.txt` starts with "SETS PAIRS_PER_SET"; `pairsDevTrain.txt` and
    # `pairsDevTest.txt` start with "PAIRS", which is one set.
    if not lines or not _LFW_HEADER.fullmatch(lines[0][1]):
        return None, lines
    number, text = lines[0]
    values = [int(value) for value in text.split()]
    num_sets, pairs_per_set = values if len(values) == 2 else (1, values[0])
    if num_sets < 1 or pairs_per_set < 1:
        report.add(_COUNTS, f"line {number}: header {text!r} announces no pairs")
        return None, lines[1:]
    return _LfwHeader(num_sets, pairs_per_set, number), lines[1:]


def _parse_lfw_line(
    number: int, line: str, extension: str, report: ProblemReport
) -> PairEntry | None:
    fields = line.split()
    if len(fields) == 3:
        name1, number1, number2 = fields
        name2 = name1
    elif len(fields) == 4:
        name1, number1, name2, number2 = fields
    else:
        report.add(
            _MALFORMED,
            f"line {number}: expected 'NAME N1 N2' (same person) or 'NAME1 N1 NAME2 N2' "
            f"(different people), found {_count_fields(fields)}",
        )
        return None
    issame = len(fields) == 3
    problems = [_check_lfw_name(name1), _check_image_number(number1), _check_image_number(number2)]
    if not issame:
        problems.append(_check_lfw_name(name2))
        if name1 == name2:
            problems.append(f"a mismatched pair names the same person {name1!r} twice")
    found = [problem for problem in problems if problem is not None]
    for problem in found:
        report.add(_MALFORMED, f"line {number}: {problem}")
    if found:
        return None
    path1 = _lfw_image_path(name1, int(number1), extension)
    return PairEntry(path1, _lfw_image_path(name2, int(number2), extension), issame, number)


def _check_lfw_name(name: str) -> str | None:
    if "/" in name or "\\" in name or name in (".", ".."):
        return f"person name {name!r} is not a folder name"
    return None


def _check_image_number(value: str) -> str | None:
    if not _IMAGE_NUMBER.fullmatch(value) or int(value) < 1:
        return f"image number {value!r} is not a positive integer"
    return None


def _lfw_image_path(name: str, image_number: int, extension: str) -> str:
    # The LFW layout: the 10th image of George_W_Bush is
    # George_W_Bush/George_W_Bush_0010.jpg (numbers padded to four digits).
    return f"{name}/{name}_{image_number:04d}.{extension}"


def _check_lfw_counts(
    header: _LfwHeader,
    issame_by_line: list[bool | None],
    line_numbers: list[int],
    report: ProblemReport,
) -> None:
    per_set = header.pairs_per_set
    expected = header.num_sets * 2 * per_set
    if len(issame_by_line) != expected:
        report.add(
            _COUNTS,
            f"line {header.line}: the header announces {header.num_sets} sets of {per_set} "
            f"matched and {per_set} mismatched pairs ({expected} pairs), "
            f"but the list has {len(issame_by_line)} pair lines",
        )
        return
    for index in range(header.num_sets):
        start, end = index * 2 * per_set, (index + 1) * 2 * per_set
        labels = issame_by_line[start:end]
        if None in labels:
            continue  # its malformed lines are already reported
        matched = labels.count(True)
        if matched != per_set:
            report.add(
                _COUNTS,
                f"set {index + 1} (lines {line_numbers[start]}-{line_numbers[end - 1]}) has "
                f"{matched} matched and {len(labels) - matched} mismatched pairs, but the "
                f"header (line {header.line}) announces {per_set} of each",
            )


def _parse_delimited(
    lines: list[tuple[int, str]], delimiter: str, report: ProblemReport
) -> list[PairEntry]:
    if lines and _is_header_row(_split_row(lines[0][1], delimiter)):
        lines = lines[1:]
    entries = []
    for number, line in lines:
        fields = _split_row(line, delimiter)
        if fields is None:
            report.add(_MALFORMED, f"line {number}: a quoted field is not closed")
            continue
        entry = _parse_row(number, fields, delimiter, report)
        if entry is not None:
            entries.append(entry)
    if not entries and not len(report):
        report.add(_MALFORMED, "the list has no pairs")
    return entries


def _split_row(line: str, delimiter: str) -> list[str] | None:
    # One physical line is one row: quoted fields may hold the delimiter,
    # but not a line break, so every row keeps its own line number.
    try:
        row = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True, strict=True))
    except csv.Error:
        return None
    return [field.strip() for field in row]


def _is_header_row(fields: list[str] | None) -> bool:
    # A header names its columns: its label field is not a label, and no
    # field looks like a file path (no dot, no slash).
    if fields is None or len(fields) != 3 or fields[2].lower() in _LABELS:
        return False
    return not any("." in field or "/" in field for field in fields)


def _parse_row(
    number: int, fields: list[str], delimiter: str, report: ProblemReport
) -> PairEntry | None:
    if len(fields) != 3:
        separator = "TAB" if delimiter == "\t" else delimiter
        report.add(
            _MALFORMED,
            f"line {number}: expected 3 fields 'path1{separator}path2{separator}label', "
            f"found {_count_fields(fields)}",
        )
        return None
    path1, path2, label = fields
    problems = [_check_relative_path(path1), _check_relative_path(path2)]
    issame = _LABELS.get(label.lower())
    if issame is None:
        problems.append(f"label {label!r} is not one of {_LABEL_CHOICES}")
    found = [problem for problem in problems if problem is not None]
    for problem in found:
        report.add(_MALFORMED, f"line {number}: {problem}")
    if found or issame is None:
        return None
    return PairEntry(posixpath.normpath(path1), posixpath.normpath(path2), issame, number)


def _count_fields(fields: list[str]) -> str:
    return "1 field" if len(fields) == 1 else f"{len(fields)} fields"


def _check_relative_path(path: str) -> str | None:
    """Return why `path` cannot name an image inside the image folder, or None if it can."""
    if not path:
        return "empty image path"
    if path.startswith("/") or re.match(r"[A-Za-z]:[\\/]", path):
        return f"image path {path!r} is absolute; give it relative to the image folder"
    normalized = posixpath.normpath(path)
    if normalized == ".." or normalized.startswith("../"):
        return f"image path {path!r} points outside the image folder"
    return None
