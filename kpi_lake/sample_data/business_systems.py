"""The council's internal business systems (revenues, planning, repairs, waste, FOI, HR, CRM) as one
relational database, built with numpy/polars and written through SQLAlchemy Core.

``build_business_frames`` makes the tables in memory, ``write_business_frames`` loads them into any
SQLAlchemy URL (SQLite here, PostgreSQL later) and ``compute_business_kpis`` implements the KPI rules
documented in docs/SAMPLE_DATA.md on those same frames.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from kpi_lake.business_tables import BUSINESS_TABLES
from kpi_lake.sample_data._common import (
    AS_OF,
    FIRST_FY,
    LAST_FY,
    Period,
    bank_holidays,
    bank_holidays_np,
    clip_unit,
    fy_label,
    reporting_quarters,
    rng_for,
    trend_curve,
)
from kpi_lake.sample_data.council import DIRECTORATES, KPI_BY_CODE, WARDS, Kpi

DAY0 = np.datetime64("2021-04-01", "D")
AS_OF_D = np.datetime64(AS_OF.isoformat(), "D")
AS_OF_S = np.datetime64(f"{AS_OF.isoformat()}T23:59:59", "s")
N_LEVELS = 23  # 2021/22 Q1 .. 2026/27 Q3
SECONDS_PER_DAY = 86_400

# ---------------------------------------------------------------------------------------------
# Schema (SQLAlchemy Core): real types, single-column primary keys, updated_at and soft deletes.
# ---------------------------------------------------------------------------------------------

# SQLite keeps datetimes as text; store them without the microseconds SQLAlchemy adds by default
# so that every reader (sqlite3, DuckDB, polars) sees a plain ISO timestamp.
_SQLITE_DATETIME = sqlite.DATETIME(
    storage_format="%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d",
    regexp=r"(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)",
)
DateTime = sa.DateTime().with_variant(_SQLITE_DATETIME, "sqlite")

metadata = sa.MetaData()


def _pk_int(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, primary_key=True, autoincrement=False)


def _audit() -> list[sa.Column]:
    return [
        # Indexed, as a business system's modified stamp is wherever changes are extracted by it: the nightly
        # reads the rows changed since its watermark through this index, not by scanning the table.
        sa.Column("updated_at", DateTime, nullable=False, index=True, comment="When the row last changed"),
        sa.Column("deleted_at", DateTime, nullable=True, comment="Soft delete: set when the row was removed"),
    ]


TABLES: dict[str, sa.Table] = {
    t.name: t
    for t in (
        sa.Table(
            "council_tax_accounts",
            metadata,
            sa.Column("account_ref", sa.String(10), primary_key=True),
            sa.Column("property_ref", sa.String(12), nullable=False),
            sa.Column("ward_code", sa.String(9), nullable=False),
            sa.Column("band", sa.String(1), nullable=False),
            sa.Column("opened_on", sa.Date, nullable=False),
            sa.Column("closed_on", sa.Date),
            sa.Column("single_person_discount", sa.Boolean, nullable=False),
            sa.Column("council_tax_reduction", sa.Boolean, nullable=False),
            *_audit(),
        ),
        sa.Table(
            "council_tax_charges",
            metadata,
            _pk_int("charge_id"),
            sa.Column("account_ref", sa.String(10), nullable=False),
            sa.Column("financial_year", sa.String(7), nullable=False),
            sa.Column("band", sa.String(1), nullable=False),
            sa.Column("billed_on", sa.Date, nullable=False),
            sa.Column("net_collectable_debit", sa.Numeric(12, 2), nullable=False),
            *_audit(),
        ),
        sa.Table(
            "council_tax_payments",
            metadata,
            _pk_int("payment_id"),
            sa.Column("account_ref", sa.String(10), nullable=False),
            sa.Column("financial_year", sa.String(7), nullable=False),
            sa.Column("paid_on", sa.Date, nullable=False),
            sa.Column("amount", sa.Numeric(12, 2), nullable=False),
            sa.Column("method", sa.String(30), nullable=False),
            *_audit(),
        ),
        sa.Table(
            "planning_applications",
            metadata,
            sa.Column("application_ref", sa.String(16), primary_key=True),
            sa.Column("ward_code", sa.String(9), nullable=False),
            sa.Column("development_category", sa.String(5), nullable=False),
            sa.Column("application_type", sa.String(40), nullable=False),
            sa.Column("received_on", sa.Date, nullable=False),
            sa.Column("valid_on", sa.Date),
            sa.Column("target_date", sa.Date),
            sa.Column("extension_agreed_to", sa.Date),
            sa.Column("decided_on", sa.Date),
            sa.Column("decision", sa.String(20)),
            *_audit(),
        ),
        sa.Table(
            "housing_repairs",
            metadata,
            _pk_int("job_id"),
            sa.Column("property_ref", sa.String(10), nullable=False),
            sa.Column("ward_code", sa.String(9), nullable=False),
            sa.Column("priority", sa.String(10), nullable=False),
            sa.Column("trade", sa.String(30), nullable=False),
            sa.Column("reported_at", DateTime, nullable=False),
            sa.Column("target_completion_at", DateTime, nullable=False),
            sa.Column("completed_at", DateTime),
            sa.Column("status", sa.String(12), nullable=False),
            *_audit(),
        ),
        sa.Table(
            "waste_collection_rounds",
            metadata,
            _pk_int("round_day_id"),
            sa.Column("round_code", sa.String(8), nullable=False),
            sa.Column("collection_date", sa.Date, nullable=False),
            sa.Column("service", sa.String(10), nullable=False),
            sa.Column("scheduled_collections", sa.Integer, nullable=False),
            *_audit(),
        ),
        sa.Table(
            "missed_bin_reports",
            metadata,
            _pk_int("report_id"),
            sa.Column("ward_code", sa.String(9), nullable=False),
            sa.Column("collection_date", sa.Date, nullable=False),
            sa.Column("reported_at", DateTime, nullable=False),
            sa.Column("service", sa.String(10), nullable=False),
            sa.Column("is_valid", sa.Boolean, nullable=False),
            sa.Column("resolved_at", DateTime),
            *_audit(),
        ),
        sa.Table(
            "foi_requests",
            metadata,
            _pk_int("request_id"),
            sa.Column("directorate", sa.String(40), nullable=False),
            sa.Column("received_on", sa.Date, nullable=False),
            sa.Column("responded_on", sa.Date),
            sa.Column("outcome", sa.String(40)),
            sa.Column("exemption", sa.String(60)),
            *_audit(),
        ),
        sa.Table(
            "employees",
            metadata,
            _pk_int("employee_id"),
            sa.Column("directorate", sa.String(40), nullable=False),
            sa.Column("fte", sa.Float, nullable=False),
            sa.Column("start_date", sa.Date, nullable=False),
            sa.Column("leave_date", sa.Date),
            *_audit(),
        ),
        sa.Table(
            "sickness_absence",
            metadata,
            _pk_int("absence_id"),
            sa.Column("employee_id", sa.Integer, nullable=False),
            sa.Column("first_day", sa.Date, nullable=False),
            sa.Column("last_day", sa.Date, nullable=False),
            sa.Column("working_days_lost", sa.Numeric(6, 1), nullable=False),
            sa.Column("reason_category", sa.String(40), nullable=False),
            *_audit(),
        ),
        sa.Table(
            "service_requests",
            metadata,
            _pk_int("request_id"),
            sa.Column("channel", sa.String(15), nullable=False),
            sa.Column("service", sa.String(30), nullable=False),
            sa.Column("category", sa.String(40), nullable=False),
            sa.Column("ward_code", sa.String(9), nullable=False),
            sa.Column("created_at", DateTime, nullable=False),
            sa.Column("closed_at", DateTime),
            sa.Column("sla_days", sa.Integer, nullable=False),
            sa.Column("status", sa.String(10), nullable=False),
            *_audit(),
        ),
    )
}
assert {name: next(iter(t.primary_key.columns)).name for name, t in TABLES.items()} == BUSINESS_TABLES

# ---------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------

WARD_CODES = [w.code for w in WARDS]
WARD_WEIGHTS = np.array([w.population for w in WARDS], dtype=float) / sum(w.population for w in WARDS)
WARD_DEPRIVATION = np.array([w.deprivation for w in WARDS])


def _pick(
    vocabulary: list[str] | tuple[str, ...] | str, index: np.ndarray, null: np.ndarray | None = None
) -> pl.Series:
    """Strings from a small vocabulary by integer index (a Rust-side gather: numpy unicode arrays
    are slow to hand to polars). ``null`` marks rows that get no value."""
    values = pl.Series(list(vocabulary), dtype=pl.String)
    index = np.asarray(index, dtype=np.int64)
    if null is None:
        return values.gather(index)
    picked = values.gather(np.where(null, 0, index))
    return pl.select(pl.when(pl.Series(null)).then(None).otherwise(picked)).to_series()


def _codes(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """Reference numbers such as '60000123': a prefix and a zero-padded number."""
    digits = pl.Series(np.asarray(numbers, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str(pl.lit(prefix), digits)).to_series()


def _fy_bounds(fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 April and 31 March of the financial years starting in ``fy`` (vectorised)."""
    months = (np.asarray(fy, dtype=np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[M]")
    start = (months + np.timedelta64(3, "M")).astype("datetime64[D]")
    end = (months + np.timedelta64(15, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
    return start, end


def _count(base: float, scale: float) -> int:
    return max(1, round(base * scale))


def _levels(kpi: Kpi, rng: np.random.Generator) -> np.ndarray:
    """The KPI's underlying level for each quarter 2021/22 Q1 .. 2026/27 Q3 (generator input)."""
    curve = trend_curve(kpi.trend, N_LEVELS, rng)
    levels = kpi.start + (kpi.end - kpi.start) * curve + rng.normal(0, kpi.noise * 0.5, N_LEVELS)
    return clip_unit(levels, kpi.unit)


def _quarter_index(days: np.ndarray) -> np.ndarray:
    """Index of the financial quarter (0 = 2021/22 Q1) of datetime64 values, clipped to the levels."""
    months = days.astype("datetime64[M]").astype(np.int64) - DAY0.astype("datetime64[M]").astype(np.int64)
    return np.clip(months // 3, 0, N_LEVELS - 1)


def _random_days(rng: np.random.Generator, n: int, start: str, end: np.datetime64) -> np.ndarray:
    lo = np.datetime64(start, "D")
    span = int((end - lo).astype(np.int64)) + 1
    return lo + rng.integers(0, span, n).astype("timedelta64[D]")


def _to_seconds(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[s]")


def _secs(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(np.int64).astype("timedelta64[s]")


def _updated_at(rng: np.random.Generator, last_event: np.ndarray, created: np.ndarray) -> np.ndarray:
    """Last change: shortly after the latest event; some rows touched again later (data fixes)."""
    n = len(last_event)
    lag = _secs(rng.integers(60, 3 * SECONDS_PER_DAY, n))
    stamp = last_event + lag
    later = rng.random(n) < 0.04
    stamp = np.where(later, stamp + _secs(rng.integers(1, 400 * SECONDS_PER_DAY, n)), stamp)
    stamp = np.minimum(stamp, AS_OF_S)
    return np.maximum(stamp, created)


def _nullable(values: np.ndarray) -> pl.Series:
    """A nullable date/datetime column: polars maps NaT to null."""
    return pl.Series(_polars_ready(values))


def _polars_ready(values: object) -> object:
    """polars takes numpy datetimes in D/ms/us/ns only; the builders work in seconds."""
    if isinstance(values, np.ndarray) and values.dtype == np.dtype("datetime64[s]"):
        return values.astype("datetime64[us]")
    return values


def _frame(columns: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame({name: _polars_ready(values) for name, values in columns.items()})


def _working_day_after(days: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The offsets-th England working day after ``days`` (weekend/holiday receipt counts from the
    next working day: roll backward first, so day 1 is the first working day after receipt)."""
    return np.busday_offset(days, offsets, roll="backward", holidays=bank_holidays_np())


def _soft_delete_copies(
    df: pl.DataFrame,
    rng: np.random.Generator,
    *,
    share: float,
    pk: str,
    new_keys: Callable[[int], pl.Series] | None = None,
) -> pl.DataFrame:
    """Append copies of a small share of rows (double postings, duplicates keyed in error) that the
    source system then soft-deleted. They must be excluded by every KPI rule."""
    n = max(1, round(len(df) * share))
    picks = np.sort(rng.choice(len(df), size=n, replace=False))
    copies = df[picks]
    if new_keys is None:
        start = int(df[pk].max()) + 1
        keys = pl.Series(pk, np.arange(start, start + n, dtype=np.int64))
    else:
        keys = new_keys(n).alias(pk)
    delay = _secs(rng.integers(3_600, 10 * SECONDS_PER_DAY, n))
    deleted = np.minimum(copies["updated_at"].to_numpy().astype("datetime64[s]") + delay, AS_OF_S)
    deleted = deleted.astype("datetime64[us]")
    copies = copies.with_columns(
        keys,
        pl.Series("updated_at", deleted),
        pl.Series("deleted_at", deleted),
    )
    return pl.concat([df, copies], how="vertical_relaxed")


# ---------------------------------------------------------------------------------------------
# Table builders
# ---------------------------------------------------------------------------------------------

BAND_D = np.array([1951.41, 2029.21, 2130.46, 2236.80, 2348.38, 2465.57])  # 2021/22 .. 2026/27
BANDS = "ABCDEFGH"
BAND_RATIO = np.array([6, 7, 8, 9, 11, 13, 15, 18]) / 9
BAND_P = np.array([0.36, 0.22, 0.18, 0.1, 0.07, 0.04, 0.025, 0.005])
BAND_P = BAND_P / BAND_P.sum()
FY_LABELS = [fy_label(y) for y in range(FIRST_FY, LAST_FY + 1)]
PAYMENT_METHODS = ["Direct Debit", "Online card", "PayPoint", "Bank transfer", "Attachment of earnings",
                   "Enforcement agent", "Refund"]  # fmt: skip
NO_TS = pl.Datetime("us")


def _no_deletes(n: int) -> pl.Series:
    return pl.Series([None] * n, dtype=NO_TS)


def _council_tax(scale: float, seed: int) -> dict[str, pl.DataFrame]:
    rng = rng_for(seed, "business", "council_tax")
    n_acc = _count(330, scale)
    ward = rng.choice(len(WARDS), n_acc, p=WARD_WEIGHTS)
    existing = rng.random(n_acc) < 0.78
    opened = np.where(
        existing,
        _random_days(rng, n_acc, "2004-04-01", np.datetime64("2021-03-31")),
        _random_days(rng, n_acc, "2021-04-01", AS_OF_D),
    )
    opened = np.sort(opened)  # account refs are issued in date order
    life_days = rng.exponential(365.25 / 0.09, n_acc).astype(np.int64)
    closed = np.maximum(opened, DAY0) + life_days.astype("timedelta64[D]")
    closed = np.where(closed > AS_OF_D, np.datetime64("NaT"), closed)
    band_idx = rng.choice(len(BANDS), n_acc, p=BAND_P)
    spd = rng.random(n_acc) < 0.33
    ctr = rng.random(n_acc) < (0.06 + 0.22 * WARD_DEPRIVATION[ward])
    refs = _codes("6", np.arange(1, n_acc + 1), 7)
    created = _to_seconds(opened) + _secs(rng.integers(8 * 3600, 17 * 3600, n_acc))
    last_event = np.where(np.isnat(closed), created, _to_seconds(closed) + _secs(np.full(n_acc, 10 * 3600)))
    accounts = _frame(
        {
            "account_ref": refs,
            "property_ref": _codes("1000", rng.integers(0, 10**8, n_acc), 8),
            "ward_code": _pick(WARD_CODES, ward),
            "band": _pick(BANDS, band_idx),
            "opened_on": opened,
            "closed_on": _nullable(closed),
            "single_person_discount": spd,
            "council_tax_reduction": ctr,
            "updated_at": _updated_at(rng, last_event, created),
            "deleted_at": _no_deletes(n_acc),
        }
    )

    # Charges: one per account per financial year it is liable for, pro rata.
    n_years = LAST_FY - FIRST_FY + 1
    acc_i = np.repeat(np.arange(n_acc), n_years)
    fy_i = np.tile(np.arange(n_years), n_acc)
    fy_start, fy_end = _fy_bounds(FIRST_FY + fy_i)
    liable_from = np.maximum(opened[acc_i], fy_start)
    close_i = closed[acc_i]
    liable_to = np.where(np.isnat(close_i), fy_end, np.minimum(close_i, fy_end))
    keep = (liable_from <= liable_to) & (liable_from <= AS_OF_D)
    acc_i, fy_i, fy_start, fy_end = acc_i[keep], fy_i[keep], fy_start[keep], fy_end[keep]
    liable_from, liable_to = liable_from[keep], liable_to[keep]
    year_days = (fy_end - fy_start).astype(np.int64) + 1
    liable_days = (liable_to - liable_from).astype(np.int64) + 1
    gross = BAND_D[fy_i] * BAND_RATIO[band_idx[acc_i]] * liable_days / year_days
    gross = np.where(spd[acc_i], gross * 0.75, gross)
    ctr_share = np.where(ctr[acc_i], rng.choice([0.5, 0.8, 1.0], len(fy_i), p=[0.3, 0.5, 0.2]), 0.0)
    debit = np.round(gross * (1 - ctr_share), 2)
    billed = np.maximum(fy_start - np.timedelta64(24, "D"), opened[acc_i])
    order = np.lexsort((acc_i, fy_i))  # charge ids follow the annual billing run
    acc_i, fy_i, fy_start, fy_end, debit, billed = (
        a[order] for a in (acc_i, fy_i, fy_start, fy_end, debit, billed)
    )
    n_ch = len(fy_i)
    charge_created = _to_seconds(billed) + _secs(rng.integers(7 * 3600, 19 * 3600, n_ch))
    charges = _frame(
        {
            "charge_id": np.arange(1, n_ch + 1, dtype=np.int64),
            "account_ref": refs.gather(acc_i),
            "financial_year": _pick(FY_LABELS, fy_i),
            "band": _pick(BANDS, band_idx[acc_i]),
            "billed_on": billed,
            "net_collectable_debit": debit,
            "updated_at": _updated_at(rng, charge_created, charge_created),
            "deleted_at": _no_deletes(n_ch),
        }
    )
    # A few bills were reissued after a banding or discount change: the old charge is soft-deleted.
    charges = _soft_delete_copies(charges, rng, share=0.01, pk="charge_id")

    # Payments. The final in-year collection level for each year comes from the KPI's profile.
    levels = _levels(KPI_BY_CODE["BPC210"], rng) / 100.0
    year_level = levels[np.minimum(np.arange(n_years) * 4 + 3, N_LEVELS - 1)]
    target = year_level[fy_i]
    p_none = 0.012
    p_partial = np.clip((1 - p_none - target) / 0.45, 0, 0.6)
    u = rng.random(n_ch)
    paid_share = np.where(u < p_none, 0.0, np.where(u < p_none + p_partial, rng.uniform(0.1, 0.9, n_ch), 1.0))
    method_i = rng.choice(4, n_ch, p=[0.58, 0.2, 0.12, 0.1])  # DD, card, PayPoint, bank transfer
    n_inst = np.select(
        [method_i == 0, method_i == 3], [10, rng.choice([1, 2], n_ch)], rng.choice([1, 2, 4, 10], n_ch)
    )
    start_month = np.maximum(
        (billed.astype("datetime64[M]") - fy_start.astype("datetime64[M]")).astype(int) + 1, 0
    )
    months_left = np.maximum(10 - start_month, 1)  # instalments run April to January
    n_inst = np.minimum(n_inst, months_left)
    n_paid = np.floor(paid_share * n_inst + 1e-9).astype(np.int64)
    n_paid = np.where((paid_share > 0) & (n_paid == 0), 1, n_paid)
    n_paid = np.where(paid_share == 1.0, n_inst, n_paid)
    inst_amount = np.floor(debit / n_inst * 100) / 100
    # Instalments are spread evenly over the months left before February; one-off and quarterly
    # payers start in a random month, direct debits in the first month.
    step = np.maximum(months_left // n_inst, 1)
    max_offset = np.maximum(months_left - step * (n_inst - 1), 1)
    first_offset = np.where(method_i == 0, 0, np.floor(rng.random(n_ch) * max_offset).astype(np.int64))
    ch_i = np.repeat(np.arange(n_ch), n_paid)
    k = np.arange(len(ch_i)) - np.repeat(np.cumsum(n_paid) - n_paid, n_paid)
    month_index = start_month[ch_i] + first_offset[ch_i] + k * step[ch_i]
    month = fy_start[ch_i].astype("datetime64[M]") + month_index.astype("timedelta64[M]")
    day_in_month = np.where(
        method_i[ch_i] == 0, np.where(ch_i % 2 == 0, 0, 14), rng.integers(0, 27, len(ch_i))
    )
    paid_on = month.astype("datetime64[D]") + day_in_month.astype("timedelta64[D]")
    last = k == n_inst[ch_i] - 1
    amount = np.where(
        last, np.round(debit[ch_i] - inst_amount[ch_i] * (n_inst[ch_i] - 1), 2), inst_amount[ch_i]
    )
    # Arrears: most part-payers clear the balance the following year (it counts for that year's
    # bill, but not in-year).
    balance = np.round(debit - np.where(n_paid == n_inst, debit, inst_amount * n_paid), 2)
    a_i = np.flatnonzero((balance > 0) & (rng.random(n_ch) < 0.75))
    a_paid_on = fy_end[a_i] + rng.integers(10, 330, len(a_i)).astype("timedelta64[D]")
    a_method = rng.choice([1, 3, 4, 5], len(a_i), p=[0.4, 0.3, 0.2, 0.1])
    # Overpayments refunded within the year: +x then -x, net zero.
    r_i = rng.choice(n_ch, max(1, round(n_ch * 0.004)), replace=False)
    r_amount = np.round(rng.uniform(20, 300, len(r_i)), 2)
    r_on = fy_start[r_i] + rng.integers(40, 200, len(r_i)).astype("timedelta64[D]")
    refund_on = r_on + rng.integers(10, 40, len(r_i)).astype("timedelta64[D]")

    all_ch = np.concatenate([ch_i, a_i, r_i, r_i])
    all_paid = np.concatenate([paid_on, a_paid_on, r_on, refund_on])
    all_amount = np.concatenate([amount, balance[a_i], r_amount, -r_amount])
    all_method = np.concatenate([method_i[ch_i], a_method, np.full(len(r_i), 1), np.full(len(r_i), 6)])
    keep = (all_paid <= AS_OF_D) & (all_amount != 0)
    order = np.lexsort((all_ch[keep], all_paid[keep]))
    sel = np.flatnonzero(keep)[order]
    all_ch, all_paid, all_amount, all_method = all_ch[sel], all_paid[sel], all_amount[sel], all_method[sel]
    n_pay = len(all_ch)
    posted = _to_seconds(all_paid) + _secs(rng.integers(6 * 3600, 22 * 3600, n_pay))
    payments = _frame(
        {
            "payment_id": np.arange(1, n_pay + 1, dtype=np.int64),
            "account_ref": refs.gather(acc_i[all_ch]),
            "financial_year": _pick(FY_LABELS, fy_i[all_ch]),
            "paid_on": all_paid,
            "amount": all_amount,
            "method": _pick(PAYMENT_METHODS, all_method),
            "updated_at": _updated_at(rng, posted, posted),
            "deleted_at": _no_deletes(n_pay),
        }
    )
    payments = _soft_delete_copies(payments, rng, share=0.006, pk="payment_id")

    # Accounts set up in error (no bills): soft-deleted.
    n_err = max(1, round(n_acc * 0.01))
    err = accounts[np.sort(rng.choice(n_acc, n_err, replace=False))]
    stamp = err["updated_at"].to_numpy().astype("datetime64[s]") + _secs(
        rng.integers(3600, 5 * SECONDS_PER_DAY, n_err)
    )
    stamp = np.minimum(stamp, AS_OF_S).astype("datetime64[us]")
    err = err.with_columns(
        _codes("7", np.arange(1, n_err + 1), 7).alias("account_ref"),
        pl.Series("updated_at", stamp),
        pl.Series("deleted_at", stamp),
        pl.lit(None, dtype=pl.Date).alias("closed_on"),
    )
    accounts = pl.concat([accounts, err], how="vertical_relaxed")
    return {
        "council_tax_accounts": accounts,
        "council_tax_charges": charges,
        "council_tax_payments": payments,
    }


PLANNING_CATEGORIES = ["major", "minor", "other"]
PLANNING_TYPES = ["Full planning permission", "Outline planning permission", "Reserved matters", "Change of use",
                  "Householder", "Listed building consent", "Advertisement consent"]  # fmt: skip
PLANNING_SUFFIXES = ["FUL", "OUT", "REM", "COU", "HOU", "LBC", "ADV"]
PLANNING_TYPE_P = np.array([
    [0.7, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0],  # major
    [0.8, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0],  # minor
    [0.0, 0.0, 0.0, 0.1, 0.7, 0.08, 0.12],  # other
])  # fmt: skip
DECISIONS = ["Granted", "Refused", "Withdrawn"]


def _planning(scale: float, seed: int) -> dict[str, pl.DataFrame]:
    rng = rng_for(seed, "business", "planning")
    # Received from July 2020 so that decisions in 2021/22 Q1 have their whole history.
    n = _count(3_000, scale)
    received = np.sort(_random_days(rng, n, "2020-07-01", AS_OF_D))
    received = np.minimum(np.busday_offset(received, 0, roll="forward", holidays=bank_holidays_np()), AS_OF_D)
    category = rng.choice(3, n, p=[0.09, 0.33, 0.58])
    # Inverse-CDF draw of the application type within each category.
    cdf = np.cumsum(PLANNING_TYPE_P, axis=1)[category]
    type_i = np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), len(PLANNING_TYPES) - 1)
    lag = np.where(rng.random(n) < 0.06, rng.integers(20, 45, n), rng.integers(0, 12, n))
    valid = np.busday_offset(received, lag, roll="forward", holidays=bank_holidays_np())
    major = category == 0
    target = valid + np.where(major, 91, 56).astype("timedelta64[D]")
    has_ext = rng.random(n) < np.where(major, 0.45, 0.12)
    ext = np.where(has_ext, target + rng.integers(14, 120, n).astype("timedelta64[D]"), np.datetime64("NaT"))
    deadline = np.where(has_ext, ext, target)
    level_maj = _levels(KPI_BY_CODE["BPB530"], rng) / 100
    level_min = _levels(KPI_BY_CODE["BPB531"], rng) / 100
    qi = _quarter_index(deadline)
    on_time = rng.random(n) < np.where(major, level_maj[qi], level_min[qi])
    window = (deadline - valid).astype(np.int64)
    early = valid + np.floor(window * rng.uniform(0.35, 1.0, n)).astype(np.int64).astype("timedelta64[D]")
    early = np.busday_offset(early, 0, roll="backward", holidays=bank_holidays_np())
    late = deadline + np.ceil(rng.exponential(25, n) + 1).astype(np.int64).astype("timedelta64[D]")
    decided = np.where(on_time, early, late)
    withdrawn = rng.random(n) < 0.04
    decided = np.where(withdrawn, valid + rng.integers(10, 120, n).astype("timedelta64[D]"), decided)
    refused = rng.random(n) < np.where(major, 0.15, 0.11)
    decision = np.where(withdrawn, 2, np.where(refused, 1, 0))
    pending = decided > AS_OF_D
    decided = np.where(pending, np.datetime64("NaT"), decided)
    not_valid_yet = valid > AS_OF_D
    valid = np.where(not_valid_yet, np.datetime64("NaT"), valid)
    target = np.where(not_valid_yet, np.datetime64("NaT"), target)
    ext = np.where(not_valid_yet | (ext > AS_OF_D + np.timedelta64(200, "D")), np.datetime64("NaT"), ext)
    # Refs: two-digit calendar year of receipt, a serial within that year, the type suffix.
    years = received.astype("datetime64[Y]").astype(np.int64) + 1970
    serial = np.arange(n) - np.searchsorted(years, years, side="left") + 1
    refs = pl.select(
        pl.concat_str(
            _codes("", years % 100, 2),
            pl.lit("/"),
            _codes("", serial, 5),
            pl.lit("/"),
            _pick(PLANNING_SUFFIXES, type_i),
        )
    ).to_series()
    last_event = np.where(np.isnat(decided), np.where(np.isnat(valid), received, valid), decided)
    created = _to_seconds(received) + _secs(rng.integers(8 * 3600, 17 * 3600, n))
    frame = _frame(
        {
            "application_ref": refs,
            "ward_code": _pick(WARD_CODES, rng.choice(len(WARDS), n, p=WARD_WEIGHTS)),
            "development_category": _pick(PLANNING_CATEGORIES, category),
            "application_type": _pick(PLANNING_TYPES, type_i),
            "received_on": received,
            "valid_on": _nullable(valid),
            "target_date": _nullable(target),
            "extension_agreed_to": _nullable(ext),
            "decided_on": _nullable(decided),
            "decision": _pick(DECISIONS, decision, null=pending),
            "updated_at": _updated_at(rng, _to_seconds(last_event) + _secs(np.full(n, 9 * 3600)), created),
            "deleted_at": _no_deletes(n),
        }
    )

    def duplicate_refs(k: int) -> pl.Series:
        # Keyed twice in error; the duplicate got a serial from the 900000 range and was deleted.
        yy = rng.choice(np.unique(years % 100), k)
        return pl.select(
            pl.concat_str(
                _codes("", yy, 2), pl.lit("/"), _codes("", 900_001 + np.arange(k), 6), pl.lit("/FUL")
            )
        ).to_series()

    frame = _soft_delete_copies(frame, rng, share=0.01, pk="application_ref", new_keys=duplicate_refs)
    return {"planning_applications": frame}


REPAIR_PRIORITIES = ["emergency", "urgent", "routine"]
REPAIR_TRADES = ["Plumbing", "Electrical", "Carpentry", "Roofing", "Plastering", "Gas servicing", "Glazing",
                 "Damp and mould", "Drainage"]  # fmt: skip
REPAIR_TRADE_P = np.array([0.22, 0.16, 0.17, 0.07, 0.08, 0.1, 0.06, 0.08, 0.06])
REPAIR_STATUSES = ["Completed", "Open", "Cancelled"]


def _random_timestamps(rng: np.random.Generator, n: int, start: str, end: np.datetime64) -> np.ndarray:
    days = np.sort(_random_days(rng, n, start, end))
    weekday = np.is_busday(days)
    office_hours = rng.integers(8 * 3600, 18 * 3600, n)
    any_hour = rng.integers(0, SECONDS_PER_DAY, n)
    secs = np.where(weekday & (rng.random(n) < 0.9), office_hours, any_hour)
    return _to_seconds(days) + _secs(secs)


def _repairs(scale: float, seed: int) -> dict[str, pl.DataFrame]:
    rng = rng_for(seed, "business", "housing_repairs")
    n = _count(6_300, scale)
    reported = _random_timestamps(rng, n, "2021-02-01", AS_OF_D)
    priority = rng.choice(3, n, p=[0.15, 0.3, 0.55])
    window = np.array([1, 7, 28])[priority] * SECONDS_PER_DAY
    target = reported + _secs(window)
    level = _levels(KPI_BY_CODE["NH617"], rng) / 100
    on_time = rng.random(n) < level[_quarter_index(target)]
    done_early = reported + _secs(window * rng.uniform(0.05, 1.0, n))
    done_late = target + _secs(window * rng.exponential(0.6, n) + 3600)
    completed = np.where(on_time, done_early, done_late)
    cancelled = rng.random(n) < 0.03
    open_ = (completed > AS_OF_S) & ~cancelled
    status = np.where(cancelled, 2, np.where(open_, 1, 0))
    completed = np.where(cancelled | open_, np.datetime64("NaT"), completed)
    last_event = np.where(np.isnat(completed), reported, completed)
    n_props = max(50, round(8_000 * min(scale, 25)))
    frame = _frame(
        {
            "job_id": np.arange(500_001, 500_001 + n, dtype=np.int64),
            "property_ref": _codes("HRA", rng.integers(1, n_props + 1, n), 6),
            "ward_code": _pick(WARD_CODES, rng.choice(len(WARDS), n, p=WARD_WEIGHTS)),
            "priority": _pick(REPAIR_PRIORITIES, priority),
            "trade": _pick(REPAIR_TRADES, rng.choice(len(REPAIR_TRADES), n, p=REPAIR_TRADE_P)),
            "reported_at": reported,
            "target_completion_at": target,
            "completed_at": _nullable(completed),
            "status": _pick(REPAIR_STATUSES, status),
            "updated_at": _updated_at(rng, last_event, reported),
            "deleted_at": _no_deletes(n),
        }
    )
    frame = _soft_delete_copies(frame, rng, share=0.005, pk="job_id")
    return {"housing_repairs": frame}


WASTE_SERVICES = ["refuse", "recycling", "garden"]


def _waste(scale: float, seed: int) -> dict[str, pl.DataFrame]:
    rng = rng_for(seed, "business", "waste")
    n_rounds = _count(4.4, scale)
    round_service = np.arange(n_rounds) % 3
    round_number = np.arange(n_rounds) // 3 + 1
    round_codes = [
        f"{('REF', 'REC', 'GDN')[s]}-{k:02d}" for s, k in zip(round_service, round_number, strict=True)
    ]
    base = np.where(round_service == 2, rng.integers(550, 700, n_rounds), rng.integers(1050, 1350, n_rounds))
    # Rounds come in whole numbers, so size them to keep total collections proportional to scale.
    season_share = np.where(round_service == 2, 0.75, 1.0)
    base = base * (4.4 * scale * 1_100) / (base * season_share).sum()
    # Weekday collection calendar; a bank-holiday collection moves to that week's Saturday.
    days = np.arange(DAY0, AS_OF_D + np.timedelta64(1, "D"))
    days = days[np.is_busday(days)]
    holiday = np.isin(days, bank_holidays_np())
    weekday = (days.astype(np.int64) + 3) % 7  # Monday = 0 (1970-01-01 was a Thursday)
    moved = np.where(holiday, days + (5 - weekday).astype("timedelta64[D]"), days)
    cal_days, cal_mult = np.unique(moved, return_counts=True)
    cal_month = cal_days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    garden_season = (cal_month >= 3) & (cal_month <= 11)
    # Every round works every calendar day in its season (garden waste: March to November).
    active = np.where(round_service[:, None] == 2, garden_season[None, :], True)
    r_i, d_i = np.nonzero(active.T)[::-1]
    order = np.lexsort((r_i, d_i))
    r_i, d_i = r_i[order], d_i[order]
    day, mult = cal_days[d_i], cal_mult[d_i]
    n = len(day)
    scheduled = np.round(base[r_i] * mult * rng.normal(1.0, 0.03, n)).astype(np.int64)
    logged = _to_seconds(day) + _secs(rng.integers(15 * 3600, 19 * 3600, n))
    rounds = _frame(
        {
            "round_day_id": np.arange(1, n + 1, dtype=np.int64),
            "round_code": _pick(round_codes, r_i),
            "collection_date": day,
            "service": _pick(WASTE_SERVICES, round_service[r_i]),
            "scheduled_collections": scheduled,
            "updated_at": _updated_at(rng, logged, logged),
            "deleted_at": _no_deletes(n),
        }
    )
    rounds = _soft_delete_copies(rounds, rng, share=0.003, pk="round_day_id")

    # Missed-bin reports against each round-day, at the quarter's underlying rate.
    rate = _levels(KPI_BY_CODE["BPE442"], rng)[_quarter_index(day)]
    n_valid = rng.poisson(scheduled * rate / 100_000)
    n_invalid = rng.poisson(scheduled * rate / 100_000 * 0.2)
    reps = n_valid + n_invalid
    rep_day_i = np.repeat(np.arange(n), reps)
    k = np.arange(len(rep_day_i)) - np.repeat(np.cumsum(reps) - reps, reps)
    is_valid = k < n_valid[rep_day_i]
    m = len(rep_day_i)
    ward_set = (np.arange(n_rounds)[:, None] * 5 + np.arange(5)[None, :]) % len(WARDS)
    ward = ward_set[r_i[rep_day_i], rng.integers(0, 5, m)]
    delay_days = rng.choice([0, 1, 2], m, p=[0.6, 0.3, 0.1])
    reported = _to_seconds(day[rep_day_i] + delay_days.astype("timedelta64[D]")) + _secs(
        rng.integers(9 * 3600, 21 * 3600, m)
    )
    resolved = reported + _secs(rng.integers(4 * 3600, 5 * SECONDS_PER_DAY, m))
    resolved = np.where(resolved > AS_OF_S, np.datetime64("NaT"), resolved)
    keep = reported <= AS_OF_S
    sel = np.flatnonzero(keep)[np.argsort(reported[keep], kind="stable")]
    last_event = np.where(np.isnat(resolved[sel]), reported[sel], resolved[sel])
    reports = _frame(
        {
            "report_id": np.arange(1, len(sel) + 1, dtype=np.int64),
            "ward_code": _pick(WARD_CODES, ward[sel]),
            "collection_date": day[rep_day_i[sel]],
            "reported_at": reported[sel],
            "service": _pick(WASTE_SERVICES, round_service[r_i[rep_day_i[sel]]]),
            "is_valid": is_valid[sel],
            "resolved_at": _nullable(resolved[sel]),
            "updated_at": _updated_at(rng, last_event, reported[sel]),
            "deleted_at": _no_deletes(len(sel)),
        }
    )
    reports = _soft_delete_copies(reports, rng, share=0.02, pk="report_id")
    return {"waste_collection_rounds": rounds, "missed_bin_reports": reports}


FOI_OUTCOMES = ["Information provided in full", "Information provided in part", "Information not held",
                "Refused – exemption applied", "Withdrawn"]  # fmt: skip
FOI_EXEMPTIONS = ["s.40(2) Personal information", "s.43(2) Commercial interests",
                  "s.21 Information accessible by other means", "s.12 Cost limit exceeded",
                  "s.31 Law enforcement", "s.22 Intended for future publication"]  # fmt: skip


def _foi(scale: float, seed: int) -> dict[str, pl.DataFrame]:
    rng = rng_for(seed, "business", "foi")
    n = _count(3_200, scale)
    # Requests arriving at weekends are logged on the day they arrived.
    received = np.sort(_random_days(rng, n, "2021-04-01", AS_OF_D))
    level = _levels(KPI_BY_CODE["BPC352b"], rng) / 100
    on_time = rng.random(n) < level[_quarter_index(received)]
    wd = np.where(on_time, rng.integers(3, 21, n), 21 + np.ceil(rng.exponential(9, n)).astype(np.int64))
    responded = _working_day_after(received, wd)
    outcome = rng.choice(len(FOI_OUTCOMES), n, p=[0.55, 0.15, 0.14, 0.12, 0.04])
    exemption = rng.choice(len(FOI_EXEMPTIONS), n)
    withdrawn = outcome == 4
    responded = np.where(withdrawn, np.datetime64("NaT"), responded)
    still_open = responded > AS_OF_D
    responded = np.where(still_open, np.datetime64("NaT"), responded)
    logged = _to_seconds(received) + _secs(rng.integers(8 * 3600, 18 * 3600, n))
    last_event = np.where(np.isnat(responded), logged, _to_seconds(responded) + _secs(np.full(n, 15 * 3600)))
    frame = _frame(
        {
            "request_id": np.arange(20_001, 20_001 + n, dtype=np.int64),
            "directorate": _pick(
                DIRECTORATES, rng.choice(len(DIRECTORATES), n, p=[0.2, 0.15, 0.25, 0.22, 0.18])
            ),
            "received_on": received,
            "responded_on": _nullable(responded),
            "outcome": _pick(FOI_OUTCOMES, outcome, null=still_open),
            "exemption": _pick(FOI_EXEMPTIONS, exemption, null=still_open | ~np.isin(outcome, [1, 3])),
            "updated_at": _updated_at(rng, last_event, logged),
            "deleted_at": _no_deletes(n),
        }
    )
    frame = _soft_delete_copies(frame, rng, share=0.01, pk="request_id")
    return {"foi_requests": frame}


SICKNESS_REASONS = ["Musculoskeletal", "Stress, depression and anxiety", "Infections (cold, flu)",
                    "Stomach and digestive", "COVID-19", "Surgery and recovery", "Other"]  # fmt: skip


def _hr(scale: float, seed: int) -> dict[str, pl.DataFrame]:
    rng = rng_for(seed, "business", "hr")
    n = _count(1_100, scale)
    stock = rng.random(n) < 0.58
    hist_start = np.datetime64("2020-04-01", "D")
    start = np.where(
        stock,
        hist_start
        - np.minimum(rng.exponential(3_300, n), 13_000).astype(np.int64).astype("timedelta64[D]")
        - 1,
        _random_days(rng, n, "2020-04-01", AS_OF_D),
    )
    start = np.sort(start)
    tenure = rng.exponential(365.25 / 0.11, n).astype(np.int64).astype("timedelta64[D]")
    leave = np.maximum(start, hist_start) + tenure
    leave = np.where(leave > AS_OF_D, np.datetime64("NaT"), leave)
    fte = rng.choice(np.array([1.0, 0.8, 0.6, 0.5, 0.4]), n, p=[0.62, 0.12, 0.1, 0.1, 0.06])
    ids = np.arange(100_001, 100_001 + n, dtype=np.int64)
    created = _to_seconds(np.maximum(start, hist_start - 30)) + _secs(np.full(n, 9 * 3600))
    last_event = np.where(np.isnat(leave), created, _to_seconds(leave) + _secs(np.full(n, 17 * 3600)))
    employees = _frame(
        {
            "employee_id": ids,
            "directorate": _pick(
                DIRECTORATES, rng.choice(len(DIRECTORATES), n, p=[0.22, 0.2, 0.18, 0.25, 0.15])
            ),
            "fte": fte,
            "start_date": start,
            "leave_date": _nullable(leave),
            "updated_at": _updated_at(rng, last_event, created),
            "deleted_at": _no_deletes(n),
        }
    )
    employees = _soft_delete_copies(employees, rng, share=0.003, pk="employee_id")

    # Sickness spells per employee-quarter from 2020/21 Q1 (the rolling measure needs a year of
    # history before 2021/22), at the quarter's underlying days-per-FTE level.
    level = _levels(KPI_BY_CODE["BCP475"], rng)
    q_starts = np.datetime64("2020-04", "M") + np.arange(0, 81, 3).astype("timedelta64[M]")
    q_starts = q_starts.astype("datetime64[D]")
    n_q = len(q_starts)
    emp_i = np.repeat(np.arange(n), n_q)
    q_i = np.tile(np.arange(n_q), n)
    mean_len = 7.6  # working days per spell, calibrated to the spell-length mix below
    spells = rng.poisson(level[np.clip(q_i - 4, 0, N_LEVELS - 1)] / 4 / mean_len)
    s_emp = np.repeat(emp_i, spells)
    s_q = np.repeat(q_i, spells)
    m = len(s_emp)
    first = q_starts[s_q] + rng.integers(0, 91, m).astype("timedelta64[D]")
    first = np.busday_offset(first, 0, roll="forward", holidays=bank_holidays_np())
    kind = rng.choice(3, m, p=[0.8, 0.15, 0.05])
    length = np.select(
        [kind == 0, kind == 1], [rng.integers(1, 6, m), rng.integers(6, 21, m)], rng.integers(21, 121, m)
    )
    last = np.busday_offset(first, length - 1, roll="forward", holidays=bank_holidays_np())
    emp_leave = leave[s_emp]
    last = np.where(~np.isnat(emp_leave) & (last > emp_leave), emp_leave, last)
    last = np.minimum(last, AS_OF_D)
    keep = (
        (first >= start[s_emp])
        & (np.isnat(emp_leave) | (first <= emp_leave))
        & (first <= AS_OF_D)
        & (last >= first)
    )
    s_emp, first, last, kind = s_emp[keep], first[keep], last[keep], kind[keep]
    order = np.lexsort((ids[s_emp], first))
    s_emp, first, last, kind = s_emp[order], first[order], last[order], kind[order]
    m = len(s_emp)
    days_lost = np.busday_count(first, last + np.timedelta64(1, "D"), holidays=bank_holidays_np())
    reason_p = np.where(
        (kind == 0)[:, None],
        np.array([0.12, 0.08, 0.42, 0.2, 0.1, 0.02, 0.06])[None, :],
        np.array([0.3, 0.38, 0.04, 0.04, 0.04, 0.15, 0.05])[None, :],
    )
    reason = np.minimum(
        (rng.random(m)[:, None] > np.cumsum(reason_p, axis=1)).sum(axis=1), len(SICKNESS_REASONS) - 1
    )
    recorded = _to_seconds(last) + _secs(rng.integers(SECONDS_PER_DAY, 6 * SECONDS_PER_DAY, m))
    absence = _frame(
        {
            "absence_id": np.arange(1, m + 1, dtype=np.int64),
            "employee_id": ids[s_emp],
            "first_day": first,
            "last_day": last,
            "working_days_lost": np.round(days_lost * fte[s_emp], 1),
            "reason_category": _pick(SICKNESS_REASONS, reason),
            "updated_at": _updated_at(rng, np.minimum(recorded, AS_OF_S), _to_seconds(first)),
            "deleted_at": _no_deletes(m),
        }
    )
    absence = _soft_delete_copies(absence, rng, share=0.008, pk="absence_id")
    return {"employees": employees, "sickness_absence": absence}


SERVICE_CATEGORIES = [
    ("Highways", "Pothole", 5, 0.14), ("Highways", "Street light fault", 10, 0.08),
    ("Highways", "Blocked drain or gully", 10, 0.05), ("Street cleansing", "Litter or overflowing bin", 3, 0.1),
    ("Street cleansing", "Graffiti", 10, 0.04), ("Street cleansing", "Dead animal", 2, 0.03),
    ("Waste", "New or replacement bin", 10, 0.12), ("Waste", "Bulky waste collection", 10, 0.09),
    ("Environmental health", "Noise complaint", 10, 0.07), ("Environmental health", "Pest control", 5, 0.05),
    ("Parks", "Overgrown vegetation", 20, 0.05), ("Parks", "Damaged play equipment", 5, 0.02),
    ("Parking", "Parking enforcement request", 2, 0.05), ("Housing", "Damp and mould report", 10, 0.06),
    ("Council tax", "Change of address", 5, 0.05),
]  # fmt: skip
CHANNELS = ["Online", "Telephone", "Email", "App", "Face to face"]
REQUEST_STATUSES = ["Closed", "Open", "Cancelled"]


def _service_requests(scale: float, seed: int) -> dict[str, pl.DataFrame]:
    rng = rng_for(seed, "business", "service_requests")
    n = _count(9_000, scale)
    created = _random_timestamps(rng, n, "2021-03-01", AS_OF_D)
    cat_p = np.array([c[3] for c in SERVICE_CATEGORIES])
    cat = rng.choice(len(SERVICE_CATEGORIES), n, p=cat_p / cat_p.sum())
    sla = np.array([c[2] for c in SERVICE_CATEGORIES])[cat]
    due = created + _secs(sla * SECONDS_PER_DAY)
    level = _levels(KPI_BY_CODE["BPPM474"], rng) / 100
    on_time = rng.random(n) < level[_quarter_index(due)]
    closed = np.where(
        on_time,
        created + _secs(sla * SECONDS_PER_DAY * rng.uniform(0.05, 1.0, n)),
        due + _secs(sla * SECONDS_PER_DAY * rng.exponential(0.7, n) + 600),
    )
    cancelled = rng.random(n) < 0.02
    open_ = (closed > AS_OF_S) & ~cancelled
    status = np.where(cancelled, 2, np.where(open_, 1, 0))
    closed = np.where(cancelled | open_, np.datetime64("NaT"), closed)
    last_event = np.where(np.isnat(closed), created, closed)
    frame = _frame(
        {
            "request_id": np.arange(3_000_001, 3_000_001 + n, dtype=np.int64),
            "channel": _pick(CHANNELS, rng.choice(len(CHANNELS), n, p=[0.42, 0.3, 0.12, 0.13, 0.03])),
            "service": _pick([c[0] for c in SERVICE_CATEGORIES], cat),
            "category": _pick([c[1] for c in SERVICE_CATEGORIES], cat),
            "ward_code": _pick(WARD_CODES, rng.choice(len(WARDS), n, p=WARD_WEIGHTS)),
            "created_at": created,
            "closed_at": _nullable(closed),
            "sla_days": sla.astype(np.int64),
            "status": _pick(REQUEST_STATUSES, status),
            "updated_at": _updated_at(rng, last_event, created),
            "deleted_at": _no_deletes(n),
        }
    )
    frame = _soft_delete_copies(frame, rng, share=0.004, pk="request_id")
    return {"service_requests": frame}


def build_business_frames(*, scale: float = 1.0, seed: int = 20261126) -> dict[str, pl.DataFrame]:
    """All business-system tables as polars frames, columns in table order, keyed by table name."""
    frames: dict[str, pl.DataFrame] = {}
    for builder in (_council_tax, _planning, _repairs, _waste, _foi, _hr, _service_requests):
        frames.update(builder(scale, seed))
    out = {}
    for name, table in TABLES.items():
        df = frames[name].select([c.name for c in table.columns])
        out[name] = df.with_columns(pl.col(pl.Datetime).dt.cast_time_unit("us"))
    return out


# ---------------------------------------------------------------------------------------------
# Loading into a database
# ---------------------------------------------------------------------------------------------

BATCH_ROWS = 100_000


def _sqlite_ready(df: pl.DataFrame) -> pl.DataFrame:
    """Turn dates, datetimes and booleans into the text/integer forms SQLAlchemy's SQLite types
    store, so rows can go straight to the driver's executemany."""
    return df.with_columns(
        pl.col(pl.Date).dt.strftime("%Y-%m-%d"),
        pl.col(pl.Datetime).dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col(pl.Boolean).cast(pl.Int8),
    )


def write_business_frames(url: str, frames: Mapping[str, pl.DataFrame]) -> dict[str, int]:
    """(Re)create the business tables at ``url`` and load the frames; returns rows per table."""
    engine = sa.create_engine(url)
    counts: dict[str, int] = {}
    try:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA journal_mode=OFF")
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
            for name, table in TABLES.items():
                df = frames[name]
                if engine.dialect.name == "sqlite":
                    sql = str(table.insert().compile(dialect=engine.dialect))
                    ready = _sqlite_ready(df)
                    for offset in range(0, len(ready), BATCH_ROWS):
                        conn.exec_driver_sql(sql, ready.slice(offset, BATCH_ROWS).rows())
                else:
                    for offset in range(0, len(df), BATCH_ROWS):
                        conn.execute(table.insert(), df.slice(offset, BATCH_ROWS).to_dicts())
                counts[name] = len(df)
            conn.commit()
    finally:
        engine.dispose()
    return counts


def write_business_database(url: str, *, scale: float, seed: int) -> dict[str, int]:
    """Build the business-system tables for (scale, seed) and write them to ``url``."""
    return write_business_frames(url, build_business_frames(scale=scale, seed=seed))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.as_posix()}"


# ---------------------------------------------------------------------------------------------
# KPI rules (reference implementation of docs/SAMPLE_DATA.md)
# ---------------------------------------------------------------------------------------------


def _live(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("deleted_at").is_null())


def _pct(num: float, den: float) -> float | None:
    return None if den == 0 else 100.0 * num / den


def _in(col: str, p: Period) -> pl.Expr:
    c = pl.col(col)
    if col.endswith("_at"):
        return (c >= dt.datetime.combine(p.start, dt.time())) & (
            c < dt.datetime.combine(p.end + dt.timedelta(days=1), dt.time())
        )
    return c.is_between(p.start, p.end)


def compute_business_kpis(frames: Mapping[str, pl.DataFrame]) -> dict[tuple[str, str], float | None]:
    """Unrounded values of the business-system KPIs for every reporting quarter, keyed by
    (kpi_code, '2024/25 Q2'), plus whole-year council tax and major-planning values keyed by
    (kpi_code, '2024/25') for the benchmarking files. None where the denominator is empty."""
    ct_charges = _live(frames["council_tax_charges"])
    ct_payments = _live(frames["council_tax_payments"])
    planning = _live(frames["planning_applications"]).filter(pl.col("decision").is_in(["Granted", "Refused"]))
    planning = planning.with_columns(
        (pl.col("decided_on") <= pl.coalesce("extension_agreed_to", "target_date")).alias("in_time")
    )
    repairs = _live(frames["housing_repairs"]).filter(pl.col("status") == "Completed")
    rounds = _live(frames["waste_collection_rounds"])
    missed = _live(frames["missed_bin_reports"]).filter(pl.col("is_valid"))
    foi = _live(frames["foi_requests"]).filter(
        pl.col("outcome").is_null() | (pl.col("outcome") != "Withdrawn")
    )
    foi = foi.with_columns(
        pl.business_day_count(
            pl.col("received_on") + pl.duration(days=1),
            pl.col("responded_on") + pl.duration(days=1),
            holidays=list(bank_holidays()),
        ).alias("working_days")
    )
    employees = _live(frames["employees"])
    sickness = _live(frames["sickness_absence"])
    requests = _live(frames["service_requests"]).filter(pl.col("status") == "Closed")

    out: dict[tuple[str, str], float | None] = {}
    for p in reporting_quarters():
        fy = fy_label(p.fy)
        fy_start = dt.date(p.fy, 4, 1)
        debit = ct_charges.filter(pl.col("financial_year") == fy)["net_collectable_debit"].sum()
        paid = ct_payments.filter(
            (pl.col("financial_year") == fy) & pl.col("paid_on").is_between(fy_start, p.end)
        )["amount"].sum()
        out[("BPC210", p.label)] = _pct(paid, debit)

        decided = planning.filter(_in("decided_on", p))
        for code, cats in (("BPB530", ["major"]), ("BPB531", ["minor", "other"])):
            sub = decided.filter(pl.col("development_category").is_in(cats))
            out[(code, p.label)] = _pct(sub["in_time"].sum(), len(sub))

        done = repairs.filter(_in("completed_at", p))
        out[("NH617", p.label)] = _pct(
            done.filter(pl.col("completed_at") <= pl.col("target_completion_at")).height, done.height
        )

        scheduled = rounds.filter(_in("collection_date", p))["scheduled_collections"].sum()
        n_missed = missed.filter(_in("collection_date", p)).height
        out[("BPE442", p.label)] = None if scheduled == 0 else 100_000.0 * n_missed / scheduled

        received = foi.filter(_in("received_on", p))
        on_time = received.filter(
            pl.col("responded_on").is_not_null() & (pl.col("working_days") <= 20)
        ).height
        out[("BPC352b", p.label)] = _pct(on_time, received.height)

        window_start = dt.date(p.end.year - 1, p.end.month, p.end.day) + dt.timedelta(days=1)
        days_lost = sickness.filter(pl.col("first_day").is_between(window_start, p.end))[
            "working_days_lost"
        ].sum()
        fte = employees.filter(
            (pl.col("start_date") <= p.end)
            & (pl.col("leave_date").is_null() | (pl.col("leave_date") > p.end))
        )["fte"].sum()
        out[("BCP475", p.label)] = None if fte == 0 else days_lost / fte

        closed = requests.filter(_in("closed_at", p))
        within = closed.filter(
            pl.col("closed_at") <= pl.col("created_at") + pl.duration(days=pl.col("sla_days"))
        ).height
        out[("BPPM474", p.label)] = _pct(within, closed.height)

    # Whole financial years, for the benchmarking returns (QRC4 outturn, PS2 annual).
    for fy in range(FIRST_FY, LAST_FY):
        year = Period(fy_label(fy), "financial_year", dt.date(fy, 4, 1), dt.date(fy + 1, 3, 31), fy)
        out[("BPC210", year.label)] = out[("BPC210", f"{year.label} Q4")]
        majors = planning.filter(_in("decided_on", year) & (pl.col("development_category") == "major"))
        out[("BPB530", year.label)] = _pct(majors["in_time"].sum(), len(majors))
    return out
