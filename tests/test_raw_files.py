"""The lossless reader every bronze table uses, on the real published files and on the awkward cases."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from kpi_lake.raw_files import (
    EXTRA_FIELDS,
    PARSE_ISSUE,
    SOURCE_ROW,
    RawFileError,
    detect_encoding,
    file_digest,
    file_hash,
    find_header_row,
    normalise_column_names,
    read_raw_file,
)


def _records(path: Path, encoding: str) -> list[list[str]]:
    with open(path, encoding=encoding, newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(
    ("relative", "header_row", "first_column"),
    [
        ("education/ks2_la.csv", 1, "time_period"),  # UTF-8 BOM
        ("education/absence_by_term.csv", 1, "time_identifier"),
        ("education/absence_by_term.meta.csv", 1, "col_name"),  # CRLF
        ("education/UD_NEETNK_LA_dashboard_2025.csv", 1, "time_period"),
        ("emissions/beis_2005-19_local_co2_subset_wide.csv", 2, "region_country"),  # title row
        ("survey/ons_life_satisfaction_table1.csv", 6, "area_code"),  # five rows above the header
        ("benchmarks/oflog_asc_data.csv", 1, "financial_year"),
        ("benchmarks/trafford_expected_standard_ks2.csv", 1, "area_code"),
        ("benchmarks/trafford_cipfa2021.csv", 1, "area_code"),
        ("geography/LTLA-UTLA_Apr23_Lookup_England-Wales.csv", 1, "ltla23cd"),
        ("geography/Ward_to_LAD_Dec2019_UK.csv", 1, "fid"),
    ],
)
def test_real_samples_read_completely(real_samples: Path, relative: str, header_row: int, first_column: str):
    path = real_samples / relative
    raw = read_raw_file(path, source_file=relative)
    assert raw.header_row == header_row
    assert raw.frame.columns[0] == first_column
    # Every record after the header is a row, none dropped, none invented.
    records = _records(path, raw.encoding)
    data_records = [r for r in records[header_row:] if r]
    assert raw.frame.height == len(data_records)
    # Cells are kept as text exactly as published (first and last row, first column).
    assert raw.frame[first_column][0] == (data_records[0][0] or None)
    assert raw.frame[first_column][-1] == (data_records[-1][0] or None)
    assert raw.frame[PARSE_ISSUE].null_count() == raw.frame.height


def test_real_sample_values_are_text_as_published(real_samples: Path):
    raw = read_raw_file(real_samples / "emissions/beis_2005-19_local_co2_subset_wide.csv", source_file="x")
    darlington_2005 = raw.frame.filter((pl.col("code") == "E06000005") & (pl.col("year") == "2005"))
    assert darlington_2005["grand_total"].item() == "761.8"
    assert darlington_2005["industry_gas"].item() == "101.3"  # header "Industry Gas " had a trailing space
    assert darlington_2005[SOURCE_ROW].item() == 3  # title on row 1, header on row 2


def test_encodings(tmp_path: Path):
    cp1252 = tmp_path / "export.csv"
    cp1252.write_bytes(
        "kpi,commentary\r\nBPB530,On track\r\nBCP475,Costs rose – £1,200 over ’target’\r\nNH617,Fine\r\n".encode(
            "cp1252"
        )
    )
    assert detect_encoding(cp1252) == "cp1252"
    raw = read_raw_file(cp1252, source_file="spar_net/export.csv")
    assert raw.frame["kpi"].to_list() == ["BPB530", "BCP475", "NH617"]
    assert raw.frame["commentary"][1] == "Costs rose – £1"
    # The comma in an unquoted field makes a ragged row: kept, flagged, extra field preserved.
    assert raw.frame[EXTRA_FIELDS].to_list() == [None, "200 over ’target’", None]
    assert "3 fields" in raw.frame[PARSE_ISSUE][1]
    assert raw.frame[SOURCE_ROW].to_list() == [2, 3, 4]


def test_multiline_quoted_commentary_is_one_row(tmp_path: Path):
    path = tmp_path / "values.csv"
    path.write_text('kpi,commentary,actual\r\nA1,"Line one,\r\nline two ""quoted""",85.2%\r\nA2,,n/a\r\n')
    raw = read_raw_file(path, source_file="values.csv")
    assert raw.frame.height == 2
    assert raw.frame["commentary"][0] == 'Line one,\r\nline two "quoted"'
    assert raw.frame["actual"].to_list() == ["85.2%", "n/a"]


def test_empty_and_header_only_files(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(RawFileError, match=r"empty\.csv: the file is empty"):
        read_raw_file(empty, source_file="empty.csv")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,c\n")
    raw = read_raw_file(header_only, source_file="header.csv")
    assert raw.frame.height == 0
    assert {"a", "b", "c"} <= set(raw.frame.columns)


def test_spreadsheet_with_title_row(tmp_path: Path):
    path = tmp_path / "export.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet("Export")
    sheet.write_row(0, 0, ["SPAR.net export, Q2 2024-25"])
    sheet.write_row(1, 0, ["Indicator ID", "Actual", "Target"])
    sheet.write_row(2, 0, ["BPPM474", "85.2%", 90])
    sheet.write_row(3, 0, ["NH617", "1,234", None])
    book.close()
    raw = read_raw_file(path, source_file="spar_net/export.xlsx")
    assert raw.header_row == 2
    assert raw.frame.columns[:3] == ["indicator_id", "actual", "target"]
    assert raw.frame["actual"].to_list() == ["85.2%", "1,234"]
    assert raw.frame["target"].to_list() == ["90", None]
    assert raw.frame[SOURCE_ROW].to_list() == [3, 4]


def test_column_names_are_delta_safe_and_unique():
    names = normalise_column_names(
        ["Territorial emissions (kt CO2e)", "Area (km2)", "", "Value", "value", "2019", "% change"]
    )
    assert names == [
        "territorial_emissions_kt_co2e",
        "area_km2",
        "column_3",
        "value",
        "value_2",
        "c_2019",
        "percent_change",
    ]


def test_header_detection_skips_title_rows():
    rows = [
        ["Indicator:", "Life satisfaction", ""],
        ["", "", ""],
        ["Area Code", "Area", "Mean"],
        ["E1", "X", "7"],
    ]
    assert find_header_row(rows) == 2


def test_truncated_last_row_is_flagged_not_padded_silently(tmp_path: Path):
    path = tmp_path / "cut.csv"
    path.write_text("kpi,actual,target\nA1,85.2,90\nA2,7")  # the transfer stopped mid-row
    raw = read_raw_file(path, source_file="cut.csv")
    assert raw.frame["kpi"].to_list() == ["A1", "A2"]
    assert raw.frame[PARSE_ISSUE][0] is None
    assert "truncated" in raw.frame[PARSE_ISSUE][1]
    complete = tmp_path / "no_final_newline.csv"
    complete.write_text("kpi,actual,target\nA1,85.2,90\nA2,7,")  # complete, just no line break at the end
    assert read_raw_file(complete, source_file="x.csv").frame[PARSE_ISSUE].null_count() == 2


def _streamed_and_whole(path: Path, source_file: str) -> tuple:
    whole = read_raw_file(path, source_file=source_file)
    streamed = read_raw_file(path, source_file=source_file, stream_from_bytes=0)
    return whole, streamed


@pytest.mark.parametrize(
    "relative",
    [
        "education/ks2_la.csv",  # UTF-8 BOM
        "education/absence_by_term.csv",
        "education/absence_by_term.meta.csv",  # CRLF
        "education/UD_NEETNK_LA_dashboard_2025.csv",
        "education/cin_sen_la.csv",
        "emissions/beis_2005-19_local_co2_subset_wide.csv",  # title row
        "survey/ons_life_satisfaction_table1.csv",  # five rows above the header
        "benchmarks/oflog_asc_data.csv",
        "geography/Ward_to_LAD_Dec2019_UK.csv",
    ],
)
def test_a_streamed_large_file_lands_the_same_rows_as_a_whole_read(real_samples: Path, relative: str):
    # Bronze streams a large file (a lazy scan, validated by one pass) instead of reading it whole: the rows,
    # columns, lineage and row count must be those of the whole read, cell for cell.
    whole, streamed = _streamed_and_whole(real_samples / relative, relative)
    assert isinstance(streamed.frame, pl.LazyFrame), "a clean UTF-8 file is streamed"
    assert streamed.height == whole.height
    assert streamed.rows_with_parse_issues == whole.rows_with_parse_issues == 0
    assert (streamed.header_row, streamed.columns, streamed.decimal_mark) == (
        whole.header_row,
        whole.columns,
        whole.decimal_mark,
    )
    assert streamed.frame.collect().equals(whole.frame)
    # Not validated first (bronze's single pass): the same rows once consumed, counted by the caller.
    single = read_raw_file(
        real_samples / relative, source_file=relative, stream_from_bytes=0, validate_stream=False
    )
    assert single.rows is None and not single.validated
    assert single.frame.collect().equals(whole.frame)


def test_file_digest_is_the_hash_and_the_utf8_check_of_every_real_sample(real_samples: Path, tmp_path: Path):
    files = [p for p in sorted(real_samples.rglob("*")) if p.is_file()]
    # A long file whose only non-UTF-8 byte is far past the first chunk, and one cut inside a character.
    late = tmp_path / "late.csv"
    late.write_bytes(b"a,b\n" + b"1,2\n" * 600_000 + "3,£\n".encode("cp1252"))
    cut = tmp_path / "cut.csv"
    cut.write_bytes("a,b\n1,£".encode()[:-1])
    for path in [*files, late, cut]:
        digest = file_digest(path, chunk_size=1 << 16)
        assert digest.sha256 == file_hash(path), path
        try:
            path.read_bytes().decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            utf8 = False
        assert digest.utf8 is utf8, path
        if path.suffix == ".csv":
            assert detect_encoding(path, utf8=digest.utf8) == detect_encoding(path), path
    assert not file_digest(late).utf8 and not file_digest(cut).utf8
    assert file_digest(late, check_utf8=False) == type(file_digest(late))(file_hash(late), None)


def test_streaming_keeps_what_the_whole_read_does_on_awkward_files(tmp_path: Path):
    cut = tmp_path / "cut.csv"
    cut.write_text("kpi,actual,target\nA1,85.2,90\nA2,7")  # a transfer stopped mid-row
    whole, streamed = _streamed_and_whole(cut, "cut.csv")
    assert streamed.frame.collect().equals(whole.frame)
    assert streamed.rows_with_parse_issues == 1
    assert "truncated" in streamed.frame.collect()[PARSE_ISSUE][1]

    european = tmp_path / "european.csv"
    european.write_text("area;value\nE1;33,5\nE2;1.234,5\n", encoding="utf-8")
    whole, streamed = _streamed_and_whole(european, "european.csv")
    assert streamed.decimal_mark == whole.decimal_mark == ","
    assert streamed.frame.collect().equals(whole.frame)

    # A row wider than the header: polars refuses it, so the file is read whole by the record reader
    # (nothing lost), not streamed.
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("kpi,actual\nA1,1\nA2,2,extra\nA3,3\n")
    whole, streamed = _streamed_and_whole(ragged, "ragged.csv")
    assert isinstance(streamed.frame, pl.DataFrame)
    assert streamed.frame.equals(whole.frame)
    assert streamed.frame[EXTRA_FIELDS].to_list() == [None, "extra", None]

    cp1252 = tmp_path / "export.csv"
    cp1252.write_bytes("kpi,commentary\r\nA1,£5\r\n".encode("cp1252"))
    assert isinstance(read_raw_file(cp1252, source_file="x", stream_from_bytes=0).frame, pl.DataFrame)
