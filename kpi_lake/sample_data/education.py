"""DfE Explore Education Statistics files for Kestrelford, its comparators, their regions and England:
key stage 2, key stage 4, pupil absence (older layout) and 16-17 NEET/not known, each with .meta.csv."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from kpi_lake.sample_data._common import LandingWriter, encode_text, rng_for, round_half_up, trend_curve
from kpi_lake.sample_data.council import (
    ALL_COUNCILS,
    COUNTRY_CODE,
    COUNTRY_NAME,
    KPI_BY_CODE,
    OWN,
    REGIONS,
    Council,
)

FAMILY = "education"
ACADEMIC_YEARS = (2021, 2022, 2023, 2024)  # 202122 .. 202425
NEET_YEARS = (2023, 2024, 2025)
KS2_FILE = f"{FAMILY}/ks2_attainment_la_202122_to_202425.csv"
KS4_FILE = f"{FAMILY}/ks4_attainment_la_202122_to_202425.csv"
ABSENCE_FILE = f"{FAMILY}/pupil_absence_la_202122_to_202425.csv"
NEET_FILE = f"{FAMILY}/UD_NEETNK_LA_dashboard_2025.csv"

# England figures the fictional councils are drawn around (one per academic year 2021/22..2024/25).
ENGLAND = {
    "read": (75, 73, 74, 75),
    "writta": (69, 71, 72, 72),
    "mat": (71, 73, 73, 74),
    "rwm": (59, 60, 61, 62),
    "rwm_high": (7, 8, 8, 8),
    "att8": (48.8, 46.4, 45.9, 45.9),
    "basics94": (69.0, 65.1, 64.6, 64.5),
    "absence": (7.6, 7.4, 7.1, 6.9),
    "neet": (5.2, 5.4, 5.6),
}

STANDARD_KS2 = ["time_period", "time_identifier", "geographic_level", "country_code", "country_name", "region_code",
                "region_name", "old_la_code", "la_name", "new_la_code"]  # fmt: skip
STANDARD_KS4 = ["time_period", "time_identifier", "geographic_level", "country_code", "country_name", "region_code",
                "region_name", "new_la_code", "old_la_code", "la_name"]  # fmt: skip
STANDARD_ABSENCE = ["time_identifier", "time_period", "geographic_level", "country_code", "country_name",
                    "region_code", "region_name", "old_la_code", "new_la_code", "la_name"]  # fmt: skip
STANDARD_NEET = ["time_period", "time_identifier", "geographic_level", "country_code", "country_name", "region_code",
                 "region_name", "old_la_code", "new_la_code", "la_name"]  # fmt: skip


def _time_period(start_year: int) -> str:
    return f"{start_year}{(start_year + 1) % 100:02d}"


def _num(value: float, dp: int) -> str:
    """DfE number formatting: fixed decimals, but whole numbers without a trailing '.0'."""
    text = f"{round_half_up(value, dp):.{dp}f}"
    return text[:-2] if dp == 1 and text.endswith(".0") else text


def _g(value: float) -> str:
    """One decimal place, shortest form ('5.6', '12', never '-0')."""
    rounded = round_half_up(value, 1) + 0.0
    return f"{rounded:g}" if rounded != 0 else "0"


def _geographies() -> list[tuple[str, str | None, Council | None]]:
    """(level, region code, council) for England, each region in play, and every council."""
    regions = sorted({c.region_code for c in ALL_COUNCILS})
    out: list[tuple[str, str | None, Council | None]] = [("National", None, None)]
    out += [("Regional", r, None) for r in regions]
    out += [("Local authority", c.region_code, c) for c in sorted(ALL_COUNCILS, key=lambda c: c.code)]
    return out


def _standard(level: str, region: str | None, council: Council | None, period: str, identifier: str) -> dict:
    return {
        "time_period": period,
        "time_identifier": identifier,
        "geographic_level": level,
        "country_code": COUNTRY_CODE,
        "country_name": COUNTRY_NAME,
        "region_code": region or "",
        "region_name": REGIONS[region] if region else "",
        "old_la_code": council.old_la_code if council else "",
        "new_la_code": council.code if council else "",
        "la_name": council.name if council else "",
    }


class _Levels:
    """Where each geography sits against England: own council follows its KPI profile, comparators
    their performance profile, regions a small offset."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = rng_for(seed, FAMILY)
        self.region_offset = {r: self.rng.normal(0, 0.5) for r in REGIONS}

    def value(self, measure: str, england: float, year_i: int, level: str, region: str | None,
              council: Council | None, *, spread: float, better: int, own_kpi: str | None = None,
              n_years: int = 4) -> float:  # fmt: skip
        if level == "National":
            return england
        if level == "Regional":
            return england + spread * self.region_offset[region] * 0.6
        assert council is not None
        if council is OWN and own_kpi is not None:
            kpi = KPI_BY_CODE[own_kpi]
            curve = trend_curve(kpi.trend, n_years, rng_for(self.seed, FAMILY, own_kpi))
            return kpi.start + (kpi.end - kpi.start) * curve[year_i] + self.rng.normal(0, kpi.noise * 0.3)
        c_rng = rng_for(self.seed, FAMILY, council.code, measure)
        drift = better * spread * 0.25 * council.momentum * (year_i - (n_years - 1) / 2)
        noise = c_rng.normal(0, spread * 0.25, n_years)[year_i]
        return (
            england
            + better * spread * council.quality
            - spread * 0.6 * (council.deprivation - 0.5) * better
            + drift
            + noise
        )


def _frame(rows: list[dict], columns: Sequence[str]) -> pl.DataFrame:
    """All cells as text (symbols such as 'c' sit among numbers); empty cells become nulls so the
    CSV shows them as nothing rather than as quoted empty strings."""
    frame = pl.DataFrame(rows, schema={c: pl.String for c in columns}, orient="row")
    return frame.with_columns(pl.when(pl.all() != "").then(pl.all()).name.keep())


def _meta(rows: Sequence[tuple], *, with_dp: bool = True) -> str:
    header = ["col_name", "col_type", "label", "indicator_grouping", "indicator_unit"]
    header += ["indicator_dp"] if with_dp else []
    header += ["filter_hint", "filter_grouping_column"]
    frame = _frame([dict(zip(header, r if with_dp else (*r[:5], *r[6:]), strict=True)) for r in rows], header)
    return frame.write_csv(line_terminator="\n", null_value="")


# ---------------------------------------------------------------------------------------------
# Key stage 2
# ---------------------------------------------------------------------------------------------

KS2_BREAKDOWNS = (
    ("Total", "Total", 1.0, 0.0),
    ("Sex", "Boys", 0.51, -3.0),
    ("Sex", "Girls", 0.49, 3.0),
    ("Disadvantage status", "Disadvantaged", 0.27, -18.0),
    ("Disadvantage status", "Disadvantaged all other", 0.73, 6.5),
    ("SEN provision", "EHC plan", 0.035, -52.0),
)
KS2_SUBJECTS = (("read", 0.0), ("writta", 0.0), ("mat", 0.0), ("rwm", 0.0), ("gps", 0.0))


def _ks2(levels: _Levels) -> tuple[pl.DataFrame, str]:
    rng = levels.rng
    indicator_cols = []
    for subject, _ in KS2_SUBJECTS:
        indicator_cols += [f"t_{subject}_eligible_pupils", f"t_{subject}_met_expected_standard",
                           f"pt_{subject}_met_expected_standard"]  # fmt: skip
    indicator_cols += ["pt_rwm_met_higher_standard"]
    columns = [*STANDARD_KS2, "breakdown_topic", "breakdown", "version", *indicator_cols]
    rows = []
    for yi, year in enumerate(ACADEMIC_YEARS):
        version = "Revised" if year == ACADEMIC_YEARS[-1] else "Final"
        for level, region, council in _geographies():
            cohort = {"National": 660_000, "Regional": 88_000}.get(level, 0)
            if council is not None:
                cohort = int(council.population_2023 * 0.0118)
            cohort = int(cohort * (1 + rng.normal(0, 0.015)))
            rwm = levels.value("rwm", ENGLAND["rwm"][yi], yi, level, region, council, spread=4.0, better=1,
                               own_kpi="DCS201")  # fmt: skip
            gap = rwm - ENGLAND["rwm"][yi]
            first_of_pair = 0
            for topic, breakdown, share, offset in KS2_BREAKDOWNS:
                if breakdown == "Total":
                    eligible = cohort
                elif breakdown in ("Girls", "Disadvantaged all other"):  # the pair adds up to the total
                    eligible = cohort - first_of_pair
                else:
                    eligible = max(1, round(cohort * share * (1 + rng.normal(0, 0.02))))
                    first_of_pair = eligible
                row = _standard(level, region, council, _time_period(year), "Academic year")
                row |= {"breakdown_topic": topic, "breakdown": breakdown, "version": version}
                for subject, _ in KS2_SUBJECTS:
                    base = rwm if subject == "rwm" else ENGLAND.get(subject, (72, 72, 72, 72))[yi] + gap * 0.8
                    pct = float(
                        np.clip(base + offset + rng.normal(0, 0.8 if breakdown != "Total" else 0), 1, 99)
                    )
                    if breakdown == "Total" and subject == "rwm":
                        pct = rwm
                    met = round(eligible * pct / 100)
                    row[f"t_{subject}_eligible_pupils"] = str(eligible)
                    row[f"t_{subject}_met_expected_standard"] = str(met)
                    row[f"pt_{subject}_met_expected_standard"] = _num(100 * met / eligible, 0)
                    if met < 6 and level == "Local authority":  # small numbers suppressed
                        row[f"t_{subject}_met_expected_standard"] = "c"
                        row[f"pt_{subject}_met_expected_standard"] = "c"
                high = max(0.0, ENGLAND["rwm_high"][yi] + gap * 0.3 + offset * 0.15)
                row["pt_rwm_met_higher_standard"] = (
                    "x" if year == ACADEMIC_YEARS[0] and breakdown == "EHC plan"
                    else "k" if high < 0.5
                    else _num(high, 0)
                )  # fmt: skip
                rows.append(row)
    meta = [
        (
            "breakdown_topic",
            "Filter",
            "Breakdown topic",
            "",
            "",
            "",
            "Filter by pupil characteristic topic",
            "",
        ),
        ("breakdown", "Filter", "Breakdown", "", "", "", "Filter by pupil characteristic", "breakdown_topic"),
        ("version", "Filter", "Data version", "", "", "", "Filter by version", ""),
    ]
    labels = {"read": "reading", "writta": "writing (teacher assessment)", "mat": "maths", "gps": "grammar, punctuation and spelling",
              "rwm": "reading, writing and maths"}  # fmt: skip
    for subject, _ in KS2_SUBJECTS:
        meta += [
            (f"t_{subject}_eligible_pupils", "Indicator", f"Number of eligible pupils - {labels[subject]}",
             "Pupil numbers", "", "0", "", ""),
            (f"t_{subject}_met_expected_standard", "Indicator", f"Number meeting the expected standard in {labels[subject]}",
             "Pupil numbers", "", "0", "", ""),
            (f"pt_{subject}_met_expected_standard", "Indicator", f"Percentage meeting the expected standard in {labels[subject]}",
             "Attainment", "%", "0", "", ""),
        ]  # fmt: skip
    meta.append(("pt_rwm_met_higher_standard", "Indicator",
                 "Percentage reaching the higher standard in reading, writing and maths", "Attainment", "%", "0", "", ""))  # fmt: skip
    return _frame(rows, columns), _meta(meta)


# ---------------------------------------------------------------------------------------------
# Key stage 4
# ---------------------------------------------------------------------------------------------


def _ks4(levels: _Levels) -> tuple[pl.DataFrame, str]:
    rng = levels.rng
    indicator_cols = [
        "t_pupils",
        "avg_att8",
        "pt_l2basics_94",
        "pt_l2basics_95",
        "pt_ebacc_e_ptq_ee",
        "avg_ebaccaps",
    ]
    columns = [*STANDARD_KS4, "breakdown", *indicator_cols]
    rows = []
    for yi, year in enumerate(ACADEMIC_YEARS):
        for level, region, council in _geographies():
            cohort = {"National": 600_000, "Regional": 80_000}.get(level, 0)
            if council is not None:
                cohort = int(council.population_2023 * 0.0109)
            att8 = levels.value("att8", ENGLAND["att8"][yi], yi, level, region, council, spread=2.2, better=1,
                                own_kpi="DCS205")  # fmt: skip
            gap = att8 - ENGLAND["att8"][yi]
            boys = 0
            for breakdown, share, offset in (("Total", 1.0, 0.0), ("Boys", 0.51, -2.1), ("Girls", 0.49, 2.2),
                                             ("Disadvantaged", 0.26, -11.5)):  # fmt: skip
                if breakdown == "Total":
                    pupils = cohort
                elif breakdown == "Girls":
                    pupils = cohort - boys
                else:
                    pupils = round(cohort * share * (1 + rng.normal(0, 0.02)))
                    boys = pupils if breakdown == "Boys" else boys
                a8 = att8 + offset + (0 if breakdown == "Total" else rng.normal(0, 0.3))
                basics94 = ENGLAND["basics94"][yi] + gap * 2.1 + offset * 2.0 + rng.normal(0, 0.4)
                row = _standard(level, region, council, _time_period(year), "Academic year")
                row |= {
                    "breakdown": breakdown,
                    "t_pupils": str(pupils),
                    "avg_att8": f"{round_half_up(a8, 1):.1f}",
                    "pt_l2basics_94": f"{round_half_up(basics94, 1):.1f}",
                    "pt_l2basics_95": f"{round_half_up(basics94 - 20.5, 1):.1f}",
                    "pt_ebacc_e_ptq_ee": f"{round_half_up(38 + gap * 1.5 + rng.normal(0, 1), 1):.1f}",
                    "avg_ebaccaps": f"{round_half_up(a8 / 10.6, 2):.2f}",
                }
                if level != "Local authority":
                    row["pt_ebacc_e_ptq_ee"] = (
                        "z" if breakdown == "Disadvantaged" else row["pt_ebacc_e_ptq_ee"]
                    )
                if year == ACADEMIC_YEARS[0] and breakdown == "Disadvantaged":
                    row["avg_ebaccaps"] = "u"  # low reliability in the first year of the new measure
                if council is not None and council.population_2023 < 180_000 and breakdown == "Disadvantaged":
                    row["pt_l2basics_95"] = "low"
                rows.append(row)
    meta = [
        ("breakdown", "Filter", "Pupil characteristic", "", "", "", "Filter by pupil characteristic", ""),
        ("t_pupils", "Indicator", "Number of pupils at the end of key stage 4", "Pupil numbers", "", "0", "", ""),
        ("avg_att8", "Indicator", "Average Attainment 8 score", "Attainment 8", "", "1", "", ""),
        ("pt_l2basics_94", "Indicator", "Percentage achieving grade 4 or above in English and maths", "Basics", "%", "1", "", ""),
        ("pt_l2basics_95", "Indicator", "Percentage achieving grade 5 or above in English and maths", "Basics", "%", "1", "", ""),
        ("pt_ebacc_e_ptq_ee", "Indicator", "Percentage entering the English Baccalaureate", "EBacc", "%", "1", "", ""),
        ("avg_ebaccaps", "Indicator", "Average EBacc APS score per pupil", "EBacc", "", "2", "", ""),
    ]  # fmt: skip
    return _frame(rows, columns), _meta(meta)


# ---------------------------------------------------------------------------------------------
# Pupil absence (older layout: '.' for missing, CRLF, no indicator_dp in the metadata)
# ---------------------------------------------------------------------------------------------

SCHOOL_TYPES = (("Total", 1.0, 0.0), ("State-funded primary", 0.52, -1.2), ("State-funded secondary", 0.45, 1.6),
                ("Special", 0.03, 4.5))  # fmt: skip


def _absence(levels: _Levels) -> tuple[pl.DataFrame, str]:
    rng = levels.rng
    indicator_cols = ["num_schools", "enrolments", "sess_possible", "sess_overall", "sess_authorised",
                      "sess_unauthorised", "sess_overall_percent", "sess_authorised_percent",
                      "sess_unauthorised_percent", "enrolments_pa_10_exact", "enrolments_pa_10_exact_percent"]  # fmt: skip
    columns = [*STANDARD_ABSENCE, "school_type", *indicator_cols]
    rows = []
    for yi, year in enumerate(ACADEMIC_YEARS):
        for level, region, council in _geographies():
            pupils = {"National": 7_400_000, "Regional": 1_000_000}.get(level, 0)
            if council is not None:
                pupils = int(council.population_2023 * 0.142)
            overall = levels.value("absence", ENGLAND["absence"][yi], yi, level, region, council, spread=0.6,
                                   better=-1, own_kpi="DCS210")  # fmt: skip
            for school_type, share, offset in SCHOOL_TYPES:
                enrol = round(pupils * share)
                possible = enrol * 316 + int(rng.integers(0, 300))
                rate = overall + offset + (0 if school_type == "Total" else rng.normal(0, 0.15))
                absent = round(possible * rate / 100)
                unauth_share = 0.27 + rng.normal(0, 0.02)
                unauth = round(absent * unauth_share)
                auth = absent - unauth
                pa10 = round(enrol * (rate * 2.55 + rng.normal(0, 0.5)) / 100)
                row = _standard(level, region, council, _time_period(year), "Academic year")
                row |= {
                    "school_type": school_type,
                    "num_schools": "." if level != "Local authority" else str(max(1, round(enrol / 280))),
                    "enrolments": str(enrol),
                    "sess_possible": str(possible),
                    "sess_overall": str(absent),
                    "sess_authorised": str(auth),
                    "sess_unauthorised": str(unauth),
                    "sess_overall_percent": _num(100 * absent / possible, 1),
                    "sess_authorised_percent": _num(100 * auth / possible, 1),
                    "sess_unauthorised_percent": _num(100 * unauth / possible, 1),
                    "enrolments_pa_10_exact": str(pa10),
                    "enrolments_pa_10_exact_percent": _num(100 * pa10 / enrol, 1),
                }
                if school_type == "Special" and year == ACADEMIC_YEARS[0]:
                    row["enrolments_pa_10_exact"] = "."
                    row["enrolments_pa_10_exact_percent"] = "."
                rows.append(row)
    meta = [
        ("num_schools", "Indicator", "Number of schools", "Absence fields", "", "", "", ""),
        ("enrolments", "Indicator", "Number of pupil enrolments", "Absence fields", "", "", "", ""),
        ("sess_possible", "Indicator", "Number of sessions possible", "Absence fields", "", "", "", ""),
        ("sess_overall", "Indicator", "Number of overall absence sessions", "Absence fields", "", "", "", ""),
        ("sess_authorised", "Indicator", "Number of authorised absence sessions", "Absence fields", "", "", "", ""),
        ("sess_unauthorised", "Indicator", "Number of unauthorised absence sessions", "Absence fields", "", "", "", ""),
        ("sess_overall_percent", "Indicator", "Overall absence rate", "Absence fields", "%", "", "", ""),
        ("sess_authorised_percent", "Indicator", "Authorised absence rate", "Absence fields", "%", "", "", ""),
        ("sess_unauthorised_percent", "Indicator", "Unauthorised absence rate", "Absence fields", "%", "", "", ""),
        ("enrolments_pa_10_exact", "Indicator", "Number of persistent absentees", "Persistent absence", "", "", "", ""),
        ("enrolments_pa_10_exact_percent", "Indicator", "Percentage of enrolments who are persistent absentees",
         "Persistent absence", "%", "", "", ""),
        ("school_type", "Filter", "School type", "", "", "", "Filter by school type", ""),
    ]  # fmt: skip
    return _frame(rows, columns), _meta(meta, with_dp=False)


# ---------------------------------------------------------------------------------------------
# 16-17 NEET and not known (dashboard layout)
# ---------------------------------------------------------------------------------------------

NEET_COLUMNS = [
    "Age", "Cohort_DJFavg", "NEET_not_known_percent", "NEET_percent", "Notknown_percent",
    "annual_change_ppts_NEET_not_known", "annualchange_NEET", "annualchange_notknown", "cohort_March",
    "TOTAL_participating_in_education_and_training_percent", "Full_time_education_percent", "Apprenticeship_percent",
    "Other_education_and_training_percent", "annual_change_Participation_in_education_training", "annual_change_FTE",
    "annual_change_apprenticeship", "annual_change_other_education_training", "September_guarantee_Offer_made_percent",
    "September_guarantee_annual_change_ppts", "cohort_noSEN_percent", "NEET_NK_noSEN_percent", "cohort_EHCP_percent",
    "NEET_NK_EHCP_percent", "cohort_SENDsupport_percent", "NEET_NK_SENDsupport_percent", "VG_cohort_DJF_avg",
    "VG_cohort_percentage", "VG_NEET_NK_percentage", "Level_3", "L2_em_GCSE_othL2", "avg_att8", "pt_l2basics_94",
    "sess_overall_percent", "enrolments_pa_10_exact_percent", "NEET_NK_quintile", "NEET_quintile",
    "Notknown_quintile", "Participation_ET_quintile", "Sep_guarantee_quintile",
]  # fmt: skip


def _lookup(
    frame: pl.DataFrame, year: int, code: str | None, region: str | None, column: str, **filters: str
) -> str:
    cond = pl.col("time_period") == _time_period(year)
    cond &= pl.col("new_la_code").fill_null("") == (code or "")
    cond &= pl.col("region_code").fill_null("") == (region or "") if code is None else pl.lit(True)
    for key, value in filters.items():
        cond &= pl.col(key) == value
    values = frame.filter(cond)[column]
    return values[0] if len(values) else "x"


def _neet(levels: _Levels, ks4: pl.DataFrame, absence: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    rng = levels.rng
    columns = [*STANDARD_NEET, *NEET_COLUMNS]
    rows = []
    previous: dict[tuple, tuple[float, float]] = {}
    for yi, year in enumerate(NEET_YEARS):
        ay = (
            year - 2
        )  # the dashboard shows the key stage 4 and absence results of the cohort's last school year
        for level, region, council in _geographies():
            key = (level, region, council.code if council else None)
            total = levels.value("neet", ENGLAND["neet"][yi], yi, level, region, council, spread=1.2, better=-1,
                                 own_kpi="DCS215", n_years=3)  # fmt: skip
            total = max(total, 1.0)
            notknown = round_half_up(max(0.1, total * rng.uniform(0.2, 0.55)), 1)
            neet = round_half_up(max(0.1, total - notknown), 1)
            combined = round_half_up(neet + notknown, 1)
            prev_neet, prev_nk = previous.get(
                key, (neet - rng.normal(0.1, 0.4), notknown - rng.normal(0.0, 0.3))
            )
            previous[key] = (neet, notknown)
            cohort = {"National": 1_335_000, "Regional": 150_000}.get(level, 0)
            if council is not None:
                cohort = int(council.population_2023 * 0.0228)
            participating = 100 - combined - rng.uniform(1.0, 3.0)
            fte = participating - rng.uniform(4.5, 8.5)
            appr = rng.uniform(2.5, 6.0)
            code = council.code if council else None
            row = _standard(level, region, council, str(year), "Calendar year")
            values = {
                "Age": "16-17",
                "Cohort_DJFavg": str(cohort),
                "NEET_not_known_percent": _g(combined),
                "NEET_percent": _g(neet),
                "Notknown_percent": _g(notknown),
                "annual_change_ppts_NEET_not_known": _g(combined - prev_neet - prev_nk),
                "annualchange_NEET": _g(neet - prev_neet),
                "annualchange_notknown": _g(notknown - prev_nk),
                "cohort_March": str(
                    cohort + int(rng.integers(-300, 300) if council is None else rng.integers(-40, 40))
                ),
                "TOTAL_participating_in_education_and_training_percent": _g(participating),
                "Full_time_education_percent": _g(fte),
                "Apprenticeship_percent": _g(appr),
                "Other_education_and_training_percent": _g(max(0.2, participating - fte - appr)),
                "annual_change_Participation_in_education_training": _g(rng.normal(0, 1.2)),
                "annual_change_FTE": _g(rng.normal(0, 1.2)),
                "annual_change_apprenticeship": _g(rng.normal(0, 0.6)),
                "annual_change_other_education_training": _g(rng.normal(0, 0.5)),
                "September_guarantee_Offer_made_percent": _g(rng.uniform(88, 97.5)),
                "September_guarantee_annual_change_ppts": _g(rng.normal(0, 2)),
                "cohort_noSEN_percent": _g(rng.uniform(80, 88)),
                "NEET_NK_noSEN_percent": _g(combined * 0.85),
                "cohort_EHCP_percent": _g(rng.uniform(3.5, 7.5)),
                "NEET_NK_EHCP_percent": _g(combined * rng.uniform(1.4, 2.6)),
                "cohort_SENDsupport_percent": _g(rng.uniform(7, 13)),
                "NEET_NK_SENDsupport_percent": _g(combined * rng.uniform(1.3, 2.2)),
                "VG_cohort_DJF_avg": _g(cohort * rng.uniform(0.02, 0.04)),
                "VG_cohort_percentage": _g(rng.uniform(1.5, 4.5)),
                "VG_NEET_NK_percentage": _g(rng.uniform(20, 45)),
                "Level_3": _g(rng.uniform(50, 62)),
                "L2_em_GCSE_othL2": _g(rng.uniform(15, 25)),
                "avg_att8": _lookup(ks4, ay, code, region, "avg_att8", breakdown="Total"),
                "pt_l2basics_94": _lookup(ks4, ay, code, region, "pt_l2basics_94", breakdown="Total"),
                "sess_overall_percent": _lookup(
                    absence, ay, code, region, "sess_overall_percent", school_type="Total"
                ),
                "enrolments_pa_10_exact_percent": _lookup(
                    absence, ay, code, region, "enrolments_pa_10_exact_percent", school_type="Total"
                ),
            }
            for q in ("NEET_NK_quintile", "NEET_quintile", "Notknown_quintile", "Participation_ET_quintile",
                      "Sep_guarantee_quintile"):  # fmt: skip
                values[q] = "z" if council is None else str(int(rng.integers(1, 6)))
            if council is not None and council.population_2023 < 180_000:
                for col in ("VG_cohort_DJF_avg", "VG_cohort_percentage", "VG_NEET_NK_percentage"):
                    values[col] = "c"
            rows.append(row | values)
    meta = [
        ("Age", "Filter", "Age", "", "", "", "Filter by age", ""),
        ("NEET_not_known_percent", "Indicator", "Proportion of 16-17 year olds NEET or whose activity is not known",
         "NEET and not known", "%", "1", "", ""),
        ("NEET_percent", "Indicator", "Proportion NEET", "NEET and not known", "%", "1", "", ""),
        ("Notknown_percent", "Indicator", "Proportion whose activity is not known", "NEET and not known", "%", "1", "", ""),
    ] + [(c, "Indicator", c.replace("_", " "), "Dashboard", "", "1", "", "") for c in NEET_COLUMNS[1:] if c not in
         ("NEET_not_known_percent", "NEET_percent", "Notknown_percent")]  # fmt: skip
    return _frame(rows, columns), _meta(meta)


# ---------------------------------------------------------------------------------------------
# KPI rules and writing
# ---------------------------------------------------------------------------------------------


def compute_education_kpis(files: dict[str, pl.DataFrame]) -> dict[tuple[str, str], float]:
    """Own council's published values: the Local authority row, 'Total' breakdown/school type."""
    out: dict[tuple[str, str], float] = {}
    own = pl.col("new_la_code") == OWN.code
    rules = (
        ("DCS201", "ks2", (pl.col("breakdown") == "Total"), "pt_rwm_met_expected_standard"),
        ("DCS205", "ks4", (pl.col("breakdown") == "Total"), "avg_att8"),
        ("DCS210", "absence", (pl.col("school_type") == "Total"), "sess_overall_percent"),
        ("DCS215", "neet", pl.lit(True), "NEET_not_known_percent"),
    )
    for code, name, cond, column in rules:
        sub = files[name].filter(own & (pl.col("geographic_level") == "Local authority") & cond)
        for period, value in sub.select("time_period", column).iter_rows():
            label = period if len(period) == 4 else f"{period[:4]}/{period[4:]}"
            out[(code, label)] = float(value)
    return out


def write_education(writer: LandingWriter, *, seed: int) -> tuple[dict[tuple[str, str], float], int, dict]:
    """Write the four DfE files and their metadata; returns KPIs, rows written and the frames."""
    levels = _Levels(seed)
    ks2, ks2_meta = _ks2(levels)
    ks4, ks4_meta = _ks4(levels)
    absence, absence_meta = _absence(levels)
    neet, neet_meta = _neet(levels, ks4, absence)

    def text(frame: pl.DataFrame) -> str:
        return frame.write_csv(line_terminator="\n", null_value="")

    writer.write_bytes(KS2_FILE, encode_text(text(ks2), bom=True))
    writer.write_bytes(KS2_FILE.replace(".csv", ".meta.csv"), encode_text(ks2_meta))
    writer.write_bytes(KS4_FILE, encode_text(text(ks4)))
    writer.write_bytes(KS4_FILE.replace(".csv", ".meta.csv"), encode_text(ks4_meta))
    writer.write_bytes(ABSENCE_FILE, encode_text(text(absence), crlf=True))
    writer.write_bytes(ABSENCE_FILE.replace(".csv", ".meta.csv"), encode_text(absence_meta, crlf=True))
    writer.write_bytes(NEET_FILE, encode_text(text(neet)))
    writer.write_bytes(NEET_FILE.replace(".csv", ".meta.csv"), encode_text(neet_meta))
    files = {"ks2": ks2, "ks4": ks4, "absence": absence, "neet": neet}
    return compute_education_kpis(files), sum(len(f) for f in files.values()), files
