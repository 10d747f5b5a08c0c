"""Shared plumbing for the sample-data generator: seeded random streams, the reporting calendar,
England bank holidays and byte-exact file writers (encodings, BOMs, line endings, xlsx)."""

from __future__ import annotations

import datetime as dt
import io
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import polars as pl
import xlsxwriter

# The generator never reads the clock: everything is "as of" this date.
AS_OF = dt.date(2026, 10, 31)
AS_OF_END = dt.datetime(2026, 10, 31, 23, 59, 59)
# Fixed creation stamp written into xlsx metadata so files are byte-for-byte reproducible.
XLSX_CREATED = dt.datetime(2026, 10, 31, 18, 0, 0)

FIRST_FY = 2021  # financial year 2021/22
LAST_FY = 2026  # financial year 2026/27 (to AS_OF)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """An independent, reproducible random stream per (seed, purpose).

    crc32 rather than hash(): Python's str hash is salted per process.
    """
    keys = [zlib.crc32(name.encode("utf-8")) for name in names]
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


# ---------------------------------------------------------------------------------------------
# Reporting calendar
# ---------------------------------------------------------------------------------------------


def fy_label(start_year: int) -> str:
    """2024 -> '2024/25'."""
    return f"{start_year}/{(start_year + 1) % 100:02d}"


def fy_of(day: dt.date) -> int:
    """Start year of the financial year (1 April - 31 March) containing ``day``."""
    return day.year if day.month >= 4 else day.year - 1


@dataclass(frozen=True)
class Period:
    """A reporting period. ``label`` is the canonical key used in SampleStory and the docs:
    '2024/25 Q2' (financial quarter), '2024/25' (financial or academic year, see ``kind``),
    '2023' (calendar year)."""

    label: str
    kind: str  # quarter | financial_year | academic_year | calendar_year
    start: dt.date
    end: dt.date
    fy: int  # start year of the financial or academic year; the calendar year for calendar_year
    quarter: int | None = None


def quarter_period(fy: int, q: int) -> Period:
    start_month = 4 + 3 * (q - 1)
    year = fy + (start_month - 1) // 12
    month = (start_month - 1) % 12 + 1
    start = dt.date(year, month, 1)
    end_month = month + 2
    nxt = dt.date(year + (end_month // 12), end_month % 12 + 1, 1)
    return Period(f"{fy_label(fy)} Q{q}", "quarter", start, nxt - dt.timedelta(days=1), fy, q)


def financial_year_period(fy: int) -> Period:
    return Period(fy_label(fy), "financial_year", dt.date(fy, 4, 1), dt.date(fy + 1, 3, 31), fy)


def academic_year_period(start_year: int) -> Period:
    return Period(
        fy_label(start_year),
        "academic_year",
        dt.date(start_year, 9, 1),
        dt.date(start_year + 1, 8, 31),
        start_year,
    )


def calendar_year_period(year: int) -> Period:
    return Period(str(year), "calendar_year", dt.date(year, 1, 1), dt.date(year, 12, 31), year)


def period_of_kind(kind: str, year: int) -> Period:
    return {
        "financial_year": financial_year_period,
        "academic_year": academic_year_period,
        "calendar_year": calendar_year_period,
    }[kind](year)


def reporting_quarters() -> list[Period]:
    """The 22 quarters SPAR.net has exports for: 2021/22 Q1 to 2026/27 Q2."""
    out = []
    for fy in range(FIRST_FY, LAST_FY + 1):
        for q in range(1, 5):
            p = quarter_period(fy, q)
            if p.end < AS_OF:
                out.append(p)
    return out


@cache
def bank_holidays() -> tuple[dt.date, ...]:
    """England and Wales bank holidays (the `holidays` package, subdivision ENG), 2019-2027."""
    return tuple(sorted(holidays.country_holidays("GB", subdiv="ENG", years=range(2019, 2028))))


def bank_holidays_np() -> np.ndarray:
    return np.array(bank_holidays(), dtype="datetime64[D]")


# ---------------------------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------------------------


def trend_curve(profile: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Progress from 0 (start level) to 1 (end level) over n periods, shaped by the profile."""
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    if profile == "recovering":  # gets worse first, then better than it started
        curve = 1.6 * t**2 - 0.6 * t
    elif profile == "slipping":  # holds up, then drops late
        curve = t**3
    elif profile == "volatile":
        curve = t + rng.normal(0, 0.35, n)
    else:  # improving, worsening, stalling: the start/end levels carry the direction
        curve = t
    return curve


def clip_unit(values: np.ndarray, unit: str) -> np.ndarray:
    if unit == "%":
        return np.clip(values, 0.0, 100.0)
    return np.clip(values, 0.0, None)


def round_half_up(value: float, decimals: int) -> float:
    """Round like Excel and SPAR.net do (half away from zero), not banker's rounding."""
    q = 10.0**decimals
    return float(np.sign(value) * np.floor(abs(value) * q + 0.5 + 1e-9) / q)


def fmt_number(value: float, decimals: int, *, thousands: bool = True) -> str:
    text = f"{value:,.{decimals}f}" if thousands else f"{value:.{decimals}f}"
    return text


def uk_date(day: dt.date | None) -> str:
    return "" if day is None else day.strftime("%d/%m/%Y")


# ---------------------------------------------------------------------------------------------
# Writers: every file goes through these so encodings and line endings are explicit.
# ---------------------------------------------------------------------------------------------


def csv_text(df: pl.DataFrame, *, line_terminator: str = "\n", null_value: str = "") -> str:
    """CSV text from a frame with polars' RFC 4180 quoting. The terminator ends records only: line
    breaks inside quoted cells stay bare LF, as Excel writes them."""
    buf = io.BytesIO()
    df.write_csv(buf, null_value=null_value, line_terminator=line_terminator)
    return buf.getvalue().decode("utf-8")


def rows_csv_text(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, line_terminator: str = "\n"
) -> str:
    """CSV text from Python rows (small tables), quoting like a spreadsheet export: only where needed."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        text = str(value)
        if any(ch in text for ch in ',"\n\r'):
            return '"' + text.replace('"', '""') + '"'
        return text

    lines = [",".join(cell(h) for h in header)]
    lines.extend(",".join(cell(v) for v in row) for row in rows)
    return line_terminator.join(lines) + line_terminator


def encode_text(
    text: str,
    *,
    encoding: str = "utf-8",
    bom: bool = False,
    crlf: bool = False,
    final_newline: bool = True,
) -> bytes:
    """Encode CSV text. ``crlf`` turns every line break into CRLF, inside quoted cells too (as
    Windows exports do); ``final_newline=False`` drops the last record's terminator."""
    if crlf:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    if not final_newline:
        text = text.removesuffix("\n").removesuffix("\r")
    data = text.encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    return data


class LandingWriter:
    """Writes files under the landing directory and remembers what it wrote (relative paths)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[str] = []

    def path(self, relative: str) -> Path:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_bytes(self, relative: str, data: bytes) -> None:
        self.path(relative).write_bytes(data)
        self.files.append(relative)

    def register(self, relative: str) -> None:
        self.files.append(relative)

    def write_xlsx(
        self,
        relative: str,
        sheet: str,
        header: Sequence[str],
        columns: Sequence[Sequence[Any]],
        *,
        title_rows: Sequence[str] = (),
        date_columns: Iterable[int] = (),
        datetime_columns: Iterable[int] = (),
    ) -> None:
        """Write one sheet column by column. ``None`` cells stay empty; dates become real Excel
        dates with UK display formats; optional title rows sit above the header."""
        buf = io.BytesIO()
        workbook = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False})
        workbook.set_properties({"created": XLSX_CREATED, "author": "", "comments": ""})
        sheet_obj = workbook.add_worksheet(sheet)
        bold = workbook.add_format({"bold": True})
        date_fmt = workbook.add_format({"num_format": "dd/mm/yyyy"})
        datetime_fmt = workbook.add_format({"num_format": "dd/mm/yyyy hh:mm"})
        date_cols = set(date_columns)
        datetime_cols = set(datetime_columns)
        for i, title in enumerate(title_rows):
            sheet_obj.write_string(i, 0, title, bold)
        header_row = len(title_rows)
        sheet_obj.write_row(header_row, 0, list(header), bold)
        first = header_row + 1
        for c, values in enumerate(columns):
            if c in date_cols or c in datetime_cols:
                fmt = date_fmt if c in date_cols else datetime_fmt
                for r, value in enumerate(values):
                    if value is not None:
                        if isinstance(value, dt.datetime):
                            sheet_obj.write_datetime(first + r, c, value, fmt)
                        else:
                            sheet_obj.write_datetime(first + r, c, dt.datetime.combine(value, dt.time()), fmt)
                continue
            for r, value in enumerate(values):
                if value is None or (isinstance(value, float) and np.isnan(value)):
                    continue
                if isinstance(value, str):
                    sheet_obj.write_string(first + r, c, value)
                else:
                    sheet_obj.write_number(first + r, c, value)
        workbook.close()
        self.write_bytes(relative, buf.getvalue())
