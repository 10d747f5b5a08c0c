"""SPAR.net, the council's performance system: the KPI definitions export and one export per quarter
(2021/22 Q1 to 2026/27 Q2) with actuals, targets, RAG, direction of travel and managers' narrative.

Actuals of computed KPIs are the values the lake can compute from the other landing families, rounded
as SPAR.net shows them, except for a handful of deliberate mismatches that reconciliation must find.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kpi_lake import rules
from kpi_lake.sample_data._common import (
    LandingWriter,
    Period,
    encode_text,
    fy_label,
    period_of_kind,
    reporting_quarters,
    rng_for,
    round_half_up,
    rows_csv_text,
    trend_curve,
    uk_date,
)
from kpi_lake.sample_data.council import HIGHER, KPIS, LOWER, NEITHER, THEME_BY_CODE, Kpi

FAMILY = "spar_net"
DEFINITIONS_FILE = f"{FAMILY}/kpi_definitions.csv"
EXPORT_COLUMNS = [
    "indicator_id", "indicator_name", "theme", "directorate", "service", "responsible_officer", "polarity", "unit",
    "frequency", "period_label", "period_start", "period_end", "actual", "target", "rag_status",
    "direction_of_travel", "data_status", "commentary", "action_to_improve", "last_updated_by", "last_updated_at",
]  # fmt: skip
DEFINITION_COLUMNS = [
    "indicator_id", "indicator_name", "definition", "theme", "secondary_theme", "directorate", "service",
    "responsible_officer", "polarity", "unit", "frequency", "rag_tolerance_pct", "decimal_places", "data_source",
    "date_added", "status",
]  # fmt: skip
XLSX_EXPORTS = 4  # the most recent exports come out of the upgraded SPAR.net as spreadsheets
STANCE_FACTOR = {"unchallenging": -0.03, "realistic": 0.015, "stretching": 0.05, "unrealistic": 0.15}
N_MISMATCHES = 5


@dataclass(frozen=True)
class Mismatch:
    """A (KPI, period) where SPAR.net's reported actual deliberately differs from the source data."""

    kpi_code: str
    period: str
    true_value: float
    reported_value: float
    reason: str


@dataclass
class SparRow:
    kpi: Kpi
    period: Period
    export: Period
    actual: float | None  # as reported (rounded)
    target: float | None = None
    rag: str = "n/a"
    direction: str = "n/a"
    status: str = "final"
    commentary: str = ""
    action: str = ""
    updated_by: str = ""
    updated_at: dt.datetime | None = None
    note: str = ""  # why there is no actual


@dataclass
class SparData:
    rows: list[SparRow]
    mismatches: list[Mismatch]
    computed_values: dict[tuple[str, str], float]  # (code, period) -> value as SPAR.net shows it when correct
    reported: dict[tuple[str, str], float | None] = field(default_factory=dict)  # as exported
    values: dict[tuple[str, str], float | None] = field(
        default_factory=dict
    )  # before late entries were blanked


def _export_periods(kpi: Kpi) -> list[tuple[Period, Period]]:
    """(export quarter, reported period) pairs for a KPI."""
    out = []
    for export in reporting_quarters():
        if kpi.period_kind == "quarter":
            out.append((export, export))
        elif export.quarter == kpi.report_quarter:
            out.append((export, period_of_kind(kpi.period_kind, export.fy + kpi.period_offset)))
    return out


def _simulate(kpi: Kpi, periods: list[Period], rng: np.random.Generator) -> list[float]:
    curve = trend_curve(kpi.trend, len(periods), rng)
    values = kpi.start + (kpi.end - kpi.start) * curve + rng.normal(0, kpi.noise, len(periods))
    if kpi.seasonal is not None:
        values = values * np.array([kpi.seasonal[(p.quarter or 1) - 1] for p in periods])
    if kpi.unit == "%":
        values = np.clip(values, 0.1, 99.9)
    elif kpi.polarity != NEITHER:
        values = np.clip(values, 0.0, None)
    return [float(v) for v in values]


def _nice_target(value: float, kpi: Kpi) -> float:
    if kpi.unit == "%":
        return min(100.0, round(value * 2) / 2)
    if kpi.unit in ("Number",):
        magnitude = 10 ** max(0, math.floor(math.log10(max(abs(value), 1))) - 1)
        return round(value / magnitude) * magnitude
    return round_half_up(value, max(kpi.decimals, 1) if kpi.unit != "Score" else kpi.decimals)


def _targets(kpi: Kpi, rows: list[SparRow], rng: np.random.Generator) -> None:
    """Targets come from last year's outturn, pushed by the KPI's stance (from unchallenging to
    unrealistic). Cumulative KPIs get a profiled target for each quarter."""
    if kpi.polarity == NEITHER or kpi.target_stance == "none":
        return
    factor = STANCE_FACTOR[kpi.target_stance] * kpi.better_sign
    by_label = {r.period.label: r for r in rows}
    for row in rows:
        p = row.period
        if kpi.period_kind == "quarter" and not kpi.cumulative:
            prior = [r.actual for r in rows if r.period.fy == p.fy - 1 and r.actual is not None]
            base = float(np.mean(prior)) if prior else kpi.start
        elif kpi.cumulative:
            last_year = by_label.get(f"{fy_label(p.fy - 1)} Q{p.quarter}")
            base = (
                last_year.actual if last_year and last_year.actual is not None else (row.actual or kpi.start)
            )
            factor = 0.004 * kpi.better_sign
        else:
            earlier = [r for r in rows if r.period.start < p.start and r.actual is not None]
            base = earlier[-1].actual if earlier else (row.actual if row.actual is not None else kpi.start)
        target = base * (1 + factor)
        if kpi.target_stance == "unrealistic" and kpi.unit == "%" and kpi.better_sign > 0:
            target = max(target, min(98.0, base + 8))
        row.target = _nice_target(target, kpi)
        if rng.random() < 0.04 and not kpi.computed:
            row.target = None  # target not set that year


def _rag(kpi: Kpi, actual: float | None, target: float | None) -> str:
    if actual is None or target is None or kpi.polarity == NEITHER:
        return "n/a"
    tol = kpi.rag_tolerance_pct / 100
    if kpi.polarity == HIGHER:
        return "G" if actual >= target else "A" if actual >= target * (1 - tol) else "R"
    return "G" if actual <= target else "A" if actual <= target * (1 + tol) else "R"


def _direction(kpi: Kpi, actual: float | None, last_year: float | None) -> str:
    if actual is None or last_year is None or kpi.polarity == NEITHER:
        return "n/a"
    if actual == last_year:
        return "No change"
    better = (actual > last_year) == (kpi.polarity == HIGHER)
    return "Improved" if better else "Worsened"


COMMENT_GOOD = [
    "On target this quarter. The service has kept up the improvements made last year, and demand has been steady.",
    "Performance is better than target – the new triage process introduced in the spring is working well.",
    "Target met. Staffing is now at full establishment after two vacancies were filled – the team’s backlog is clear.",
]
COMMENT_AMBER = [
    "Slightly below target; two long-term vacancies in the team affected turnaround.\nRecovery plan agreed with the director.",
    "Just short of target. Seasonal demand was higher than forecast, and the team prioritised urgent cases.",
    'Close to target. Some delays were caused by the "new system" bedding in – this should settle next quarter.',
]
COMMENT_RED = [
    "Off target. Demand rose sharply on the same quarter last year, and capacity has not kept pace.",
    "Below target. The service is carrying vacancies and agency cover costs £{k}k a month.\nA business case for permanent posts is with finance.",
    "Performance has fallen short of the target, which was set before the budget reductions – the target is under review.",
]
COMMENT_NONE = [
    "Contextual measure – no target is set. Reported for information.",
    "Monitored for context; movement reflects demand rather than performance.",
]
ACTIONS = [
    "Weekly performance huddles; backlog cleared by end of next quarter.",
    "Recruitment to vacant posts under way; interim agency cover agreed.",
    "Process review with the Insight, Performance and Intelligence team; report to the next performance clinic.",
    "Redesign of the intake process, funded from the transformation reserve (£{k}k).",
]
ROLE_IDS = ["perf.officer.01", "perf.officer.02", "perf.officer.03", "perf.officer.04", "perf.officer.05",
            "perf.officer.06", "ipi.analyst.02", "ipi.analyst.05"]  # fmt: skip


#: What a manager adds to the commentary of an amber or red value that is worse than a year earlier.
WORSE_THAN_LAST_YEAR = " Worse than the same period last year."
_MART_POLARITY = {HIGHER: rules.HIGHER, LOWER: rules.LOWER, NEITHER: rules.NEITHER}
#: Survey-based KPIs whose published figures carry 95% confidence intervals (the Active Lives and Fingertips
#: files in sample_data/benchmarks.py), besides the council's own survey: the mart compares them by interval.
_PUBLISHED_WITH_INTERVALS = ("PH363", "PH364")


def mart_directions(kpi: Kpi, pairs: list[tuple[float | None, float | None]]) -> list[str]:
    """The mart's direction of travel (:func:`kpi_lake.rules.direction_of_travel`) of each (value, value a year
    earlier) pair, so that a narrative's remark on the trend says what the single view's Direction_Of_Travel
    says. SPAR.net's own direction column keeps its rule (any change counts; :func:`_direction`)."""
    frame = pl.DataFrame(
        {"actual": [a for a, _ in pairs], "comparison": [c for _, c in pairs]},
        schema={"actual": pl.Float64, "comparison": pl.Float64},
    )
    rule = rules.direction_of_travel("actual", "comparison", _MART_POLARITY[kpi.polarity])
    return frame.select(rule)["direction_of_travel"].to_list()


def _mart_value(row: SparRow | None, correct: Mapping[tuple[str, str], float]) -> float | None:
    """The value the mart holds for a SPAR.net row: the lake's own figure for a computed KPI."""
    if row is None:
        return None
    return correct.get((row.kpi.code, row.period.label), row.actual) if row.kpi.computed else row.actual


def _narrative(row: SparRow, rng: np.random.Generator, *, worse_than_last_year: bool) -> None:
    k = int(rng.integers(12, 95))
    if row.actual is None:
        row.commentary = row.note
        return
    pool = {"G": COMMENT_GOOD, "A": COMMENT_AMBER, "R": COMMENT_RED}.get(row.rag, COMMENT_NONE)
    row.commentary = pool[int(rng.integers(0, len(pool)))].format(k=k)
    if row.target is None and row.kpi.polarity != NEITHER:
        row.commentary = "Target not set for this year while the service is restructured."
    if worse_than_last_year and row.rag in ("A", "R"):
        row.commentary += WORSE_THAN_LAST_YEAR
    if row.rag in ("A", "R"):
        row.action = ACTIONS[int(rng.integers(0, len(ACTIONS)))].format(k=k)


def _misreport(
    row_value: float, kpi: Kpi, previous: float | None, rng: np.random.Generator
) -> tuple[float, str]:
    """A plausible wrong figure, far enough from the truth for reconciliation to see."""
    threshold = max(10 * 10 ** (-kpi.decimals), 0.01 * abs(row_value))
    choice = int(rng.integers(0, 3))
    if choice == 0 and previous is not None and abs(previous - row_value) >= threshold:
        return previous, "Previous period's figure carried forward"
    if choice == 1:
        text = f"{row_value:.{kpi.decimals}f}"
        digits = [i for i, ch in enumerate(text) if ch.isdigit()]
        if len(digits) >= 2:
            a, b = digits[-2], digits[-1]
            swapped = list(text)
            swapped[a], swapped[b] = swapped[b], swapped[a]
            value = float("".join(swapped))
            if abs(value - row_value) >= threshold:
                return value, "Digits transposed when keyed in"
    step = max(threshold, abs(row_value) * rng.uniform(0.03, 0.06))
    value = round_half_up(
        row_value + kpi.better_sign * step if kpi.better_sign else row_value + step, kpi.decimals
    )
    if kpi.unit == "%":
        value = min(value, 100.0)
        if abs(value - row_value) < threshold:
            value = round_half_up(row_value - step, kpi.decimals)
    return value, "Keyed before late returns were logged (figure not refreshed)"


def build_spar(computed: Mapping[tuple[str, str], float | None], *, seed: int) -> SparData:
    """All SPAR.net rows for every KPI and export, plus the deliberate mismatches."""
    rng = rng_for(seed, FAMILY)
    rows_by_kpi: dict[str, list[SparRow]] = {}
    correct: dict[tuple[str, str], float] = {}
    for kpi in KPIS:
        k_rng = rng_for(seed, FAMILY, kpi.code)
        pairs = _export_periods(kpi)
        if kpi.computed:
            # Nothing is reported for periods beyond what the source family covers.
            covered = [p.start for _, p in pairs if (kpi.code, p.label) in computed]
            pairs = [(e, p) for e, p in pairs if not covered or p.start <= max(covered)]
        simulated = _simulate(kpi, [p for _, p in pairs], k_rng)
        rows = []
        for (export, period), sim in zip(pairs, simulated, strict=True):
            note = ""
            if kpi.computed and (kpi.code, period.label) in computed:
                true = computed[(kpi.code, period.label)]
                actual = None if true is None else round_half_up(true, kpi.decimals)
                if actual is not None:
                    correct[(kpi.code, period.label)] = actual
                else:
                    note = "No cases in the period – not calculated."
            elif kpi.source_system == "education" and period.kind == "academic_year" and period.fy == 2020:
                actual = None
                note = "No national data for 2020/21: assessments and exams were cancelled (COVID-19)."
            else:
                actual = round_half_up(sim, kpi.decimals)
            rows.append(SparRow(kpi, period, export, actual, note=note))
        rows_by_kpi[kpi.code] = rows

    # Deliberate mismatches: always one FOI quarter, then four other computed KPIs.
    latest = reporting_quarters()[-1].label
    eligible = {
        k.code: [
            i
            for i, r in enumerate(rows_by_kpi[k.code])
            if (k.code, r.period.label) in correct and r.period.label != latest
        ]
        for k in KPIS
        if k.computed
    }
    candidates = [code for code, rows in eligible.items() if rows and code != "BPC352b"]
    picks = sorted(rng.choice(len(candidates), min(N_MISMATCHES - 1, len(candidates)), replace=False))
    mismatches = []
    for code in ["BPC352b", *[candidates[i] for i in picks]]:
        rows = rows_by_kpi[code]
        i = eligible[code][int(rng.integers(0, len(eligible[code])))]
        row = rows[i]
        previous = rows[i - 1].actual if i > 0 else None
        reported, reason = _misreport(row.actual, row.kpi, previous, rng)
        mismatches.append(Mismatch(code, row.period.label, row.actual, reported, reason))
        row.actual = reported

    values = {(code, r.period.label): r.actual for code, rows in rows_by_kpi.items() for r in rows}
    out_rows: list[SparRow] = []
    for kpi in KPIS:
        rows = rows_by_kpi[kpi.code]
        k_rng = rng_for(seed, FAMILY, kpi.code, "narrative")
        _targets(kpi, rows, k_rng)
        by_start = {r.period.start: r for r in rows}
        lasts = [
            by_start.get(row.period.start.replace(year=row.period.start.year - 1))
            if kpi.period_kind == "quarter"
            else (rows[i - 1] if i > 0 else None)
            for i, row in enumerate(rows)
        ]

        # The trend a manager writes about is the mart's, on the values the mart holds (the lake's own figure
        # for a computed KPI, not a misreported one). Survey-based KPIs are compared by confidence intervals
        # there, which SPAR.net does not hold: their narratives make no remark on the trend.
        pairs = [
            (_mart_value(row, correct), _mart_value(last, correct))
            for row, last in zip(rows, lasts, strict=True)
        ]
        trends = mart_directions(kpi, pairs)
        for row, last, trend in zip(rows, lasts, trends, strict=True):
            row.rag = _rag(kpi, row.actual, row.target)
            row.direction = _direction(kpi, row.actual, last.actual if last else None)
            by_interval = kpi.source_system == "qol_survey" or kpi.code in _PUBLISHED_WITH_INTERVALS
            worse = trend == "worsening" and not by_interval
            _narrative(row, k_rng, worse_than_last_year=worse)
            row.updated_by = ROLE_IDS[int(k_rng.integers(0, len(ROLE_IDS)))]
            days = int(k_rng.integers(12, 46))
            minutes = int(k_rng.integers(8 * 60 + 30, 18 * 60))
            row.updated_at = dt.datetime.combine(
                row.export.end + dt.timedelta(days=days), dt.time(minutes // 60, minutes % 60)
            )
            if row.export == reporting_quarters()[-1]:
                row.updated_at = min(row.updated_at, dt.datetime(2026, 10, 30, 17, 45))
                if kpi.period_kind == "quarter" and k_rng.random() < 0.4:
                    row.status = "provisional"
                if not kpi.computed and k_rng.random() < 0.12:
                    row.actual, row.rag, row.direction = None, "n/a", "n/a"
                    row.commentary = row.commentary.replace(WORSE_THAN_LAST_YEAR, "")
                    row.status = "provisional"
                    row.commentary, row.action = "Data not yet available from the service.", ""
        out_rows.extend(rows)
    reported = {(r.kpi.code, r.period.label): r.actual for r in out_rows}
    return SparData(out_rows, mismatches, correct, reported, values)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _period_label(row: SparRow, style: str) -> str:
    p = row.period
    if p.kind == "quarter":
        if style == "fy_q":
            return f"{fy_label(p.fy)} Q{p.quarter}"
        if style == "q_fy":
            return f"Q{p.quarter} {p.fy}-{(p.fy + 1) % 100:02d}"
        return f"{MONTHS[p.start.month - 1]}-{MONTHS[p.end.month - 1]} {p.start.year}"
    if p.kind == "academic_year":
        return f"{p.label} academic year"
    return p.label


def _label_style(export: Period, xlsx: bool) -> str:
    if xlsx:
        return "fy_q"
    return {2021: "fy_q", 2022: "q_fy", 2023: "months", 2024: "fy_q"}.get(export.fy, "q_fy")


def _format_value(value: float | None, kpi: Kpi, *, percent_sign: bool) -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.{kpi.decimals}f}"
    return f"{text}%" if kpi.unit == "%" and percent_sign else text


def _cells(row: SparRow, style: str, *, percent_sign: bool) -> list:
    kpi = row.kpi
    target = "" if row.target is None else _format_value(row.target, kpi, percent_sign=percent_sign)
    if row.target is None and kpi.polarity != NEITHER and kpi.target_stance != "none":
        target = "n/a"
    actual = _format_value(row.actual, kpi, percent_sign=percent_sign)
    if row.actual is None and row.status == "provisional":
        actual = ""  # not yet entered
    return [
        kpi.code, kpi.name, THEME_BY_CODE[kpi.theme].name, kpi.directorate, kpi.service, kpi.responsible_officer,
        kpi.polarity, kpi.unit, kpi.frequency, _period_label(row, style), uk_date(row.period.start),
        uk_date(row.period.end), actual, target, row.rag, row.direction, row.status, row.commentary, row.action,
        row.updated_by, row.updated_at.strftime("%d/%m/%Y %H:%M") if row.updated_at else "",
    ]  # fmt: skip


def _export_name(export: Period, ext: str) -> str:
    return f"{FAMILY}/spar_export_{export.fy}-{(export.fy + 1) % 100:02d}_Q{export.quarter}.{ext}"


def _definitions_text() -> str:
    rows = []
    for i, kpi in enumerate(KPIS):
        added = dt.date(2019, 4, 1) + dt.timedelta(days=37 * (i % 23))
        rows.append([
            kpi.code, kpi.name, kpi.definition, THEME_BY_CODE[kpi.theme].name,
            THEME_BY_CODE[kpi.secondary_theme].name if kpi.secondary_theme else "", kpi.directorate, kpi.service,
            kpi.responsible_officer, kpi.polarity, kpi.unit, kpi.frequency, f"{kpi.rag_tolerance_pct:g}",
            str(kpi.decimals), kpi.data_source, uk_date(added), "Active",
        ])  # fmt: skip
    return rows_csv_text(DEFINITION_COLUMNS, rows)


def write_spar(writer: LandingWriter, data: SparData) -> int:
    """Write the definitions and every quarterly export; returns rows written."""
    writer.write_bytes(DEFINITIONS_FILE, encode_text(_definitions_text(), encoding="cp1252", crlf=True))
    exports = reporting_quarters()
    by_export: dict[str, list[SparRow]] = {}
    for row in data.rows:
        by_export.setdefault(row.export.label, []).append(row)
    n_rows = len(KPIS)
    for i, export in enumerate(exports):
        rows = sorted(by_export[export.label], key=lambda r: (r.kpi.theme, r.kpi.code))
        n_rows += len(rows)
        xlsx = i >= len(exports) - XLSX_EXPORTS
        style = _label_style(export, xlsx)
        if not xlsx:
            cells = [_cells(r, style, percent_sign=export.fy >= 2023) for r in rows]
            text = rows_csv_text(EXPORT_COLUMNS, cells)
            writer.write_bytes(_export_name(export, "csv"), encode_text(text, encoding="cp1252", crlf=True))
            continue
        # Spreadsheet exports: real numbers and dates, "n/a" as text, sometimes a title row.
        cells = [_cells(r, style, percent_sign=False) for r in rows]
        columns = [list(col) for col in zip(*cells, strict=True)]
        for c in (12, 13):  # actual, target
            columns[c] = [_xlsx_number(v) for v in columns[c]]
        columns[10] = [r.period.start for r in rows]
        columns[11] = [r.period.end for r in rows]
        columns[20] = [r.updated_at for r in rows]
        columns = [[None if v == "" else v for v in col] for col in columns]
        title = (
            (f"Kestrelford City Council – SPAR.net performance export – {export.label}",)
            if i % 2 == 0
            else ()
        )
        writer.write_xlsx(
            _export_name(export, "xlsx"),
            "Export",
            EXPORT_COLUMNS,
            columns,
            title_rows=title,
            date_columns=(10, 11),
            datetime_columns=(20,),
        )
    return n_rows


def _xlsx_number(text: str) -> float | str:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return text
