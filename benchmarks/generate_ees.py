"""Write a realistic school-level DfE Explore Education Statistics (EES) data file, deterministically.

    .venv/bin/python benchmarks/generate_ees.py --rows 2000000 --out /tmp/ees/ees_school_level.csv

The shape of DfE's school-level files (school census, attendance, KS4): the EES time and geography columns
down to school (URN, name, LAESTAB), three filters (school phase, pupil characteristic, breakdown) and nine
indicators: headcounts, percentages and rates, with EES suppression symbols (c, x, z, low) in about 4 % of
cells. Each row is one school, year and characteristic: the table's key is unique. Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

CHARACTERISTICS = [
    ("Total", "Total"),
    ("Sex", "Boys"),
    ("Sex", "Girls"),
    ("FSM", "FSM eligible"),
    ("FSM", "Not FSM eligible"),
    ("SEN provision", "EHC plan"),
    ("SEN provision", "SEN support"),
    ("SEN provision", "No identified SEN"),
    ("First language", "English"),
    ("First language", "Other than English"),
]
PHASES = ["State-funded primary", "State-funded secondary", "Special", "Pupil referral unit"]
REGIONS = [(f"E1200000{i}", name) for i, name in enumerate(
    ["North East", "North West", "Yorkshire and The Humber", "East Midlands", "West Midlands",
     "East of England", "London", "South East", "South West"], start=1)]  # fmt: skip
SYMBOLS = ["c", "x", "z", "low"]


def generate(rows: int, seed: int = 20261126) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    years = 10
    per_school = years * len(CHARACTERISTICS)
    schools = -(-rows // per_school)
    school = np.arange(rows) // per_school
    within = np.arange(rows) % per_school
    year = 2015 + within // len(CHARACTERISTICS)
    characteristic = within % len(CHARACTERISTICS)
    la = rng.integers(0, 153, schools)[school]
    region = la % len(REGIONS)
    phase = rng.integers(0, len(PHASES), schools)[school]
    pupils = rng.integers(15, 1800, schools)[school]
    share = np.where(characteristic == 0, 1.0, rng.uniform(0.02, 0.6, rows))
    headcount = np.maximum((pupils * share).round().astype(np.int64), 0)
    columns: dict[str, object] = {
        "time_period": pl.Series(year).cast(pl.String)
        + pl.Series((year + 1) % 100).cast(pl.String).str.zfill(2),
        "time_identifier": pl.repeat("Academic year", rows, eager=True),
        "geographic_level": pl.repeat("School", rows, eager=True),
        "country_code": pl.repeat("E92000001", rows, eager=True),
        "country_name": pl.repeat("England", rows, eager=True),
        "region_code": pl.Series([REGIONS[r][0] for r in range(len(REGIONS))])[region],
        "region_name": pl.Series([REGIONS[r][1] for r in range(len(REGIONS))])[region],
        "old_la_code": pl.Series(800 + la).cast(pl.String),
        "la_name": "Authority " + pl.Series(la).cast(pl.String),
        "new_la_code": "E0" + pl.Series(6000000 + la).cast(pl.String),
        "school_urn": pl.Series(100000 + school).cast(pl.String),
        "school_laestab": pl.Series((800 + la) * 10000 + school % 10000).cast(pl.String),
        "school_name": "School " + pl.Series(school).cast(pl.String),
        "phase_type_grouping": pl.Series(PHASES)[phase],
        "characteristic_group": pl.Series([c[0] for c in CHARACTERISTICS])[characteristic],
        "characteristic": pl.Series([c[1] for c in CHARACTERISTICS])[characteristic],
    }
    indicators = {
        "headcount": headcount.astype(np.float64),
        "fte_pupils": (headcount * rng.uniform(0.9, 1.0, rows)).round(1),
        "pt_of_school": (share * 100).round(1),
        "enrolments_number": np.maximum(headcount - rng.integers(0, 5, rows), 0).astype(np.float64),
        "sess_overall_percent": rng.uniform(2, 14, rows).round(2),
        "sess_authorised_percent": rng.uniform(1, 9, rows).round(2),
        "sess_unauthorised_percent": rng.uniform(0, 5, rows).round(2),
        "persistent_absentees_number": rng.integers(0, 200, rows).astype(np.float64),
        "pupil_teacher_ratio": rng.uniform(8, 30, rows).round(1),
    }
    for name, values in indicators.items():
        text = pl.Series(values).cast(pl.String).str.replace(r"\.0$", "")
        suppressed = rng.random(rows) < 0.04
        symbol = pl.Series(SYMBOLS)[rng.integers(0, len(SYMBOLS), rows)]
        columns[name] = pl.select(pl.when(pl.Series(suppressed)).then(symbol).otherwise(text)).to_series()
    return pl.DataFrame(columns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write (its folder is created)")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame = generate(args.rows, args.seed)
    frame.write_csv(args.out)
    print(
        f"{args.out}: {frame.height:,} rows, {frame.width} columns, {args.out.stat().st_size / 1e6:,.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
