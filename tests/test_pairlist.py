"""Tests for parsing LFW and CSV/TSV pair lists."""

from __future__ import annotations

import pytest

from binconv.errors import PairListError
from binconv.pairlist import PairEntry, decode_pair_list, detect_format, parse_pair_list
from binconv.problems import ProblemReport

LFW_TWO_SETS = """2\t2
Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\t3
Abdel_Madi_Shabneh\t1\tDean_Barker\t1
Abdel_Madi_Shabneh\t1\tGiancarlo_Fisichella\t1
Zico\t1\t3
Zoran_Djindjic\t1\t4
Zach_Pillar\t1\tZoe_Ball\t1
Zulfiqar_Ahmed\t1\tZydrunas_Ilgauskas\t1
"""


def parse(text: str, source: str = "pairs.txt", **options: str) -> tuple[list, ProblemReport]:
    report = ProblemReport(source)
    pair_list = parse_pair_list(text, report, **options)
    return list(pair_list.entries), report


def test_lfw_pairs_follow_list_order() -> None:
    entries, report = parse(LFW_TWO_SETS)

    assert len(report) == 0
    assert [entry.line for entry in entries] == list(range(2, 10))
    assert [entry.issame for entry in entries] == [True, True, False, False] * 2
    assert entries[0] == PairEntry(
        "Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 2
    )
    assert entries[2] == PairEntry(
        "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg",
        "Dean_Barker/Dean_Barker_0001.jpg",
        False,
        4,
    )


def test_lfw_records_number_of_sets() -> None:
    report = ProblemReport("pairs.txt")
    pair_list = parse_pair_list(LFW_TWO_SETS, report)
    assert pair_list.format == "lfw"
    assert pair_list.num_sets == 2


def test_lfw_single_count_header_is_one_set() -> None:
    text = "2\nA 1 2\nB 3 12\nA 1 B 2\nC 1 D 1\n"
    entries, report = parse(text, "pairsDevTrain.txt")
    assert len(report) == 0
    assert [entry.issame for entry in entries] == [True, True, False, False]
    assert entries[1].path2 == "B/B_0012.jpg"


def test_lfw_without_header_is_accepted() -> None:
    entries, report = parse("A 1 2\nA 1 B 2\n\n")
    assert len(report) == 0
    assert [(entry.path1, entry.path2, entry.issame) for entry in entries] == [
        ("A/A_0001.jpg", "A/A_0002.jpg", True),
        ("A/A_0001.jpg", "B/B_0002.jpg", False),
    ]


def test_lfw_extension_option() -> None:
    entries, _ = parse("A 1 2\n", lfw_extension="png")
    assert entries[0].path1 == "A/A_0001.png"


def test_lfw_header_count_mismatch() -> None:
    text = LFW_TWO_SETS.rstrip("\n").rsplit("\n", 1)[0]  # drop the last pair
    _, report = parse(text)
    assert report.problems == (
        "line 1: the header announces 2 sets of 2 matched and 2 mismatched pairs (8 pairs), "
        "but the list has 7 pair lines",
    )


def test_lfw_set_with_wrong_split() -> None:
    lines = LFW_TWO_SETS.splitlines()
    lines[3] = "Abdel_Madi_Shabneh\t1\t2"  # a matched pair where a mismatched one belongs
    _, report = parse("\n".join(lines))
    assert report.problems == (
        "set 1 (lines 2-5) has 3 matched and 1 mismatched pairs, "
        "but the header (line 1) announces 2 of each",
    )


def test_lfw_malformed_lines_all_reported() -> None:
    text = "A 1 2\nB 1\nC x 2\nD 1 E 0\nF 1 F 2\nG/H 1 2\nI 1 2 3 4\n"
    entries, report = parse(text)
    assert [entry.line for entry in entries] == [1]
    assert report.problems == (
        "line 2: expected 'NAME N1 N2' (same person) or 'NAME1 N1 NAME2 N2' "
        "(different people), found 2 fields",
        "line 3: image number 'x' is not a positive integer",
        "line 4: image number '0' is not a positive integer",
        "line 5: a mismatched pair names the same person 'F' twice",
        "line 6: person name 'G/H' is not a folder name",
        "line 7: expected 'NAME N1 N2' (same person) or 'NAME1 N1 NAME2 N2' "
        "(different people), found 5 fields",
    )


def test_lfw_header_without_pairs_is_reported() -> None:
    _, report = parse("0 300\nA 1 2\n")
    assert report.problems == ("line 1: header '0 300' announces no pairs",)


def test_lfw_only_header_has_no_pairs() -> None:
    entries, report = parse("10 300\n")
    assert entries == []
    assert report.problems == ("the list has no pairs",)


def test_csv_header_and_label_spellings() -> None:
    text = (
        "path1,path2,label\n"
        "a/1.jpg, b/1.jpg, 1\n"
        "a/1.jpg,c/1.jpg,0\n"
        "a/1.jpg,a/2.jpg,TRUE\n"
        "a/1.jpg,d.jpg,False\n"
        "x.png,y.png,same\n"
        "x.png,z.png,Diff\n"
    )
    entries, report = parse(text, "pairs.csv")
    assert len(report) == 0
    assert [entry.issame for entry in entries] == [True, False, True, False, True, False]
    assert entries[0] == PairEntry("a/1.jpg", "b/1.jpg", True, 2)
    assert [entry.line for entry in entries] == [2, 3, 4, 5, 6, 7]


def test_csv_without_header_keeps_first_row() -> None:
    entries, report = parse("a.jpg,b.jpg,1\n", "list.csv")
    assert len(report) == 0
    assert entries == [PairEntry("a.jpg", "b.jpg", True, 1)]


def test_csv_quoted_paths_with_commas() -> None:
    entries, _ = parse('"me, myself.jpg","./b//c.jpg",0\na.jpg, "b, c.jpg", 1\n', "list.csv")
    assert entries == [
        PairEntry("me, myself.jpg", "b/c.jpg", False, 1),
        PairEntry("a.jpg", "b, c.jpg", True, 2),
    ]


def test_tsv_paths_with_spaces_and_commas() -> None:
    entries, report = parse("my photos/a,1.jpg\tb.jpg\t1\n", "list.tsv")
    assert len(report) == 0
    assert entries == [PairEntry("my photos/a,1.jpg", "b.jpg", True, 1)]


def test_csv_bad_rows_all_reported() -> None:
    text = (
        "a.jpg,b.jpg,1\n"
        "a.jpg,b.jpg,maybe\n"
        "a.jpg,b.jpg\n"
        "/abs/a.jpg,b.jpg,1\n"
        "a.jpg,../outside.jpg,0\n"
        ",b.jpg,1\n"
        '"a.jpg,b.jpg,1\n'
        "a.jpg,b.jpg,1,extra\n"
    )
    entries, report = parse(text, "pairs.csv")
    assert [entry.line for entry in entries] == [1]
    assert report.problems == (
        "line 2: label 'maybe' is not one of 1, 0, true, false, same or diff",
        "line 3: expected 3 fields 'path1,path2,label', found 2 fields",
        "line 4: image path '/abs/a.jpg' is absolute; give it relative to the image folder",
        "line 5: image path '../outside.jpg' points outside the image folder",
        "line 6: empty image path",
        "line 7: a quoted field is not closed",
        "line 8: expected 3 fields 'path1,path2,label', found 4 fields",
    )


def test_csv_with_only_header_has_no_pairs() -> None:
    entries, report = parse("path1,path2,label\n", "pairs.csv")
    assert entries == []
    assert report.problems == ("the list has no pairs",)


@pytest.mark.parametrize(
    ("source", "text", "expected"),
    [
        ("pairs.csv", "A 1 2\n", "csv"),
        ("pairs.TSV", "a,b,1\n", "tsv"),
        ("pairs.txt", "10\t300\n", "lfw"),
        ("pairsDevTrain.txt", "1100\n", "lfw"),
        ("pairs.txt", "\nAbel_Pacheco\t1\t4\n", "lfw"),
        ("pairs.txt", "A 1 B 2\n", "lfw"),
        ("pairs.txt", "a.jpg\tb.jpg\t1\n", "tsv"),
        ("pairs.txt", "a dir/a.jpg\tb.jpg\t1\n", "tsv"),
        ("pairs.list", "a.jpg,b.jpg,1\n", "csv"),
    ],
)
def test_detect_format_by_extension_then_content(source: str, text: str, expected: str) -> None:
    assert detect_format(source, text) == expected


def test_detect_format_rejects_unknown_content() -> None:
    with pytest.raises(PairListError, match="pass --format lfw, csv or tsv"):
        detect_format("pairs.txt", "just some words\n")


def test_detect_format_rejects_empty_list() -> None:
    with pytest.raises(PairListError, match=r"pairs\.txt: the pair list is empty"):
        detect_format("pairs.txt", "\n \n")


def test_explicit_format_overrides_detection() -> None:
    entries, report = parse("a.jpg b.jpg,c.jpg,1\n", "pairs.txt", list_format="csv")
    assert len(report) == 0
    assert entries == [PairEntry("a.jpg b.jpg", "c.jpg", True, 1)]


def test_unknown_format_name_is_rejected() -> None:
    with pytest.raises(PairListError, match="unknown pair list format 'xml'"):
        parse("a,b,1\n", list_format="xml")


def test_decode_accepts_byte_order_mark_and_crlf() -> None:
    text = decode_pair_list("\ufeffa.jpg,b.jpg,1\r\n".encode(), "pairs.csv")
    entries, report = parse(text, "pairs.csv")
    assert len(report) == 0
    assert entries == [PairEntry("a.jpg", "b.jpg", True, 1)]


def test_decode_rejects_binary_file() -> None:
    with pytest.raises(PairListError, match=r"pairs.txt: not a UTF-8 text file .*offset 2"):
        decode_pair_list(b"A \xff\xd8\xff\xe0", "pairs.txt")


def test_report_lists_up_to_limit_per_kind() -> None:
    # 25 malformed lines and one count problem: the count problem is still
    # listed after the malformed lines are cut at the limit.
    text = "30 1\n" + "".join(f"A {index} B x\n" for index in range(1, 26))
    report = ProblemReport("pairs.txt", max_listed=20)
    parse_pair_list(text, report)
    with pytest.raises(PairListError) as caught:
        report.raise_if_any(" (images in /data)")
    message = str(caught.value)
    assert len(caught.value.problems) == 26
    first_line = message.splitlines()[0]
    assert first_line == "pairs.txt (images in /data): 26 problems found, nothing was written:"
    assert "line 21: image number 'x'" in message
    assert "line 22: image number 'x'" not in message
    assert "  ... and 5 more malformed lines" in message
    assert message.endswith("(60 pairs), but the list has 25 pair lines")


def test_report_without_problems_does_not_raise() -> None:
    report = ProblemReport("pairs.txt")
    report.raise_if_any()
    assert len(report) == 0


def test_report_orders_each_kind_by_line() -> None:
    report = ProblemReport("pairs.txt")
    report.add("invalid images", "line 9: b.jpg: not an image", 9)
    report.add("missing images", "line 4: c.jpg: not found", 4)
    report.add("invalid images", "line 3: a.jpg: not a valid jpg image", 3)
    report.add("invalid images", "line 9: d.jpg: not an image", 9)

    assert report.problems == (
        "line 3: a.jpg: not a valid jpg image",
        "line 9: b.jpg: not an image",
        "line 9: d.jpg: not an image",
        "line 4: c.jpg: not found",
    )
