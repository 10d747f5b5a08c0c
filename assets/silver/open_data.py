"""Silver open data: DESNZ emissions, DfE education statistics and comparator benchmarks, conformed."""

import polars as pl

from assets.silver.factory import SilverTable, Streamed
from kpi_lake.conform.benchmarks import BENCHMARK_KEY, BENCHMARKS, INDICATOR_FILES, conform_benchmarks
from kpi_lake.conform.bronze_rows import file_stem
from kpi_lake.conform.education import (
    EDUCATION,
    EDUCATION_KEY,
    EDUCATION_SCHEMA,
    EES_DATA,
    EES_METADATA,
    conform_education,
    education_publications,
    stream_education,
)
from kpi_lake.conform.emissions import CO2_WIDE, EMISSIONS, EMISSIONS_KEY, GHG_LONG, conform_emissions

EMISSIONS_COLUMNS = {
    "local_authority_code": "ONS code of the local authority (E06000005 Darlington).",
    "local_authority_name": "The authority's name as the release prints it.",
    "calendar_year": "Calendar year of the emissions.",
    "sector": "DESNZ sector in its releases' words whatever the file's spelling (Industry, Commercial, Public "
    "Sector, Domestic, Transport, LULUCF, Agriculture, Waste Management; 'Industry and Commercial' in the 2005-17 "
    "tables).",
    "sub_sector": "DESNZ sub-sector in the current release's words; older names are mapped where they correspond "
    "(\"Industry 'Other Fuels'\" → \"Industry 'Other'\"). Components only: a wide table's totals (found by "
    "name and by their numbers, e.g. 'LULUCF Net Emissions' after its six 'Net Emissions: …' parts), population "
    "and area columns are never rows, and each authority-year adds up to the file's Grand Total or is "
    "quarantined with the gap.",
    "greenhouse_gas": "CO2, CH4 or N2O; CO2 for the CO2-only releases.",
    "territorial_kt_co2e": "Territorial emissions, kt CO2e (kt CO2 in CO2-only releases). Negative for LULUCF "
    "sinks. Null where the release publishes only the within-scope measure (the wide 'subset' tables).",
    "within_scope_kt_co2e": "Emissions within the scope of influence of local authorities, kt CO2e (CO2 only; 0 "
    "for other gases in the GHG release).",
    "population_thousands": "Mid-year population of the authority, thousands.",
    "area_km2": "Area of the authority, km².",
    "source_release": "Release and file the row comes from: 'DESNZ long GHG (…)', 'BEIS long CO2 (…)', "
    "'BEIS wide CO2 (…)' or 'BEIS wide CO2 subset (…)'.",
    "source_file": "Landed file (path below the landing zone).",
    "source_row": "Row of the landed file (as a spreadsheet numbers it).",
}

EDUCATION_COLUMNS = {
    "publication": "The EES file's name without extension (ks2_la, absence_by_term).",
    "time_period": "Period as published: 202425 for an academic or financial year, 2025 for a calendar year.",
    "time_identifier": "What time_period means: Academic year, Calendar year, Financial year, …",
    "period_start": "First day of the period where the time_identifier defines it (academic year 1 September, "
    "financial year 1 April, calendar year 1 January; also tax years, quarters and months); else null.",
    "period_end": "Last day of that period (31 August, 31 March, 31 December …); else null.",
    "geographic_level": "EES geographic level: National, Regional, Local authority, …",
    "geography_code": "Code of the place at that level: country_code, region_code or new_la_code (and the EES "
    "standard column for other levels).",
    "geography_name": "Name of the place at that level.",
    "region_code": "Region of the place, where the file gives one.",
    "filters": "The row's filter columns and values as a JSON object with sorted keys, e.g. "
    '{"school_type":"Special","term":"Autumn term"}; {} when the file has none.',
    "indicator": "Indicator column name, snake_case as landed (pt_rwm_met_expected_standard).",
    "value": "The indicator's value; null when suppressed or not published.",
    "suppression_code": "EES symbol in place of a value: c confidential, x not available, z not applicable, "
    "k rounds to zero, u low reliability, low, or '.' / ':' in older files.",
    "unit": "indicator_unit from the .meta.csv ('%', '£'); null without a meta file or unit.",
    "label": "The indicator's label from the .meta.csv; null without a meta file.",
    "source_file": "Landed file (path below the landing zone).",
    "source_row": "Row of the landed file.",
}


def _stream_education(
    sink, units=None, ees_data: pl.LazyFrame | None = None, ees_metadata: pl.LazyFrame | None = None
) -> pl.DataFrame:
    return stream_education(ees_data, ees_metadata, sink, publications=units)


#: Education is conformed in slices and partitioned by publication and period: a 5-million-row school-level
#: file fits in 2 GB (bronze, silver and checks), and a new or corrected file rewrites only its publication's
#: partitions.
EDUCATION_STREAMED = Streamed(
    units=education_publications,
    run=_stream_education,
    schema=EDUCATION_SCHEMA,
    unit_column="publication",
    unit_of_file=file_stem,
    partition_by=("publication", "time_period"),
)

BENCHMARK_COLUMNS = {
    "geography_code": "ONS code of the area compared.",
    "geography_name": "The area's name as published.",
    "period": "Period as published (2015/16, 2016-17, 04/2020-03/2021); null when a spreadsheet export's "
    "title rows did not reach bronze.",
    "indicator": "Indicator name: the file's indicator column, Oflog's Measure, or a spreadsheet export's "
    "'Indicator:' title row (else its value column's header).",
    "indicator_code": "Publisher's indicator code where given (Oflog ASC1).",
    "measure": "What is measured: LG Inform measure (Percentage), Oflog grouping (LA_Raw), or a spreadsheet's "
    "value column header; null where the file has none (Fingertips).",
    "filters": "The row's breakdown as a JSON object with sorted keys, as in silver education: the file's "
    "breakdown columns (sex, age, category_type, category, ethnicity … and any other column that tells rows of "
    "one indicator, area and period apart), blank cells left out, e.g. "
    '{"age":"All ages","category":"Most deprived decile (IMD2015)","category_type":"County & UA deprivation '
    'deciles in England (IMD2015)","sex":"Persons"}; {} when the file has no breakdown. Part of the key.',
    "is_headline": "True for the area's whole-population figure, the one comparator statistics use: every "
    "breakdown absent or a whole-population value (Persons, All, Total …; so no category), and age absent, "
    "'All ages', or - where the indicator has no all-ages row - its standard band (the band of most of its "
    "otherwise-headline rows). Fingertips: Sex=Persons, no Category Type, the indicator's age band.",
    "unit": "Unit as published (LG Inform: Persons …).",
    "value": "The value; null when the file has a marker (NA, x, c …) or a blank instead.",
    "value_note": "Why the value is null, in words with the marker as published ('not available (NA)'), and any "
    "note the file gives for the row (Fingertips' Value note: 'Aggregated from all known lower geography "
    "values').",
    "lower_ci": "Lower 95% confidence limit, where published (Fingertips 'Lower CI 95.0 limit').",
    "upper_ci": "Upper 95% confidence limit, where published.",
    "lower_ci_99_8": "Lower 99.8% confidence limit, where published (Fingertips 'Lower CI 99.8 limit').",
    "upper_ci_99_8": "Upper 99.8% confidence limit, where published.",
    "count": "The count the value is computed from (its numerator), where published (Fingertips Count).",
    "denominator": "The denominator the value is computed from, where published (Fingertips Denominator).",
    "median": "Median of all councils' values, where published (Oflog MEDIAN).",
    "mads_from_median": "Median absolute deviations from the median, where published (Oflog).",
    "rank": "Rank of the area, where the file publishes one.",
    "rank_order": "Direction the publisher ranks in (Oflog: desc; null where not ranked).",
    "polarity": "Higher is better / Lower is better: as published, or from Oflog's rank order.",
    "compared_to_england": "The publisher's comparison with England (Fingertips: Better, Similar, Worse, Not "
    "compared, or a percentile band), where published.",
    "compared_to_region": "The publisher's comparison with the area's region, where published.",
    "compared_to_goal": "The publisher's comparison with the indicator's goal, where published.",
    "recent_trend": "The publisher's recent trend (Fingertips: Increasing, Decreasing, No significant change, "
    "Cannot be calculated …), where published.",
    "comparator_group": "Group the area is compared within, where published (Oflog: Unitary Authorities …).",
    "source_layout": "Layout the file was read as: long, oflog or spreadsheet (detected from its columns).",
    "source_file": "Landed file (path below the landing zone).",
    "source_row": "Row of the landed file.",
}

SILVER_TABLES = [
    SilverTable(
        ref=EMISSIONS,
        inputs=(GHG_LONG, CO2_WIDE),
        conform=conform_emissions,
        description=(
            "DESNZ/BEIS local authority emissions from every release, one row per authority, calendar year, "
            "sector, sub-sector and greenhouse gas. Wide tables are unpivoted (their total, population and "
            "area columns are not rows), regional and county '… Total' rows are left out (they sum the "
            "authorities), and where releases overlap for an authority, year and gas the newest release "
            "(long GHG, then long CO2, then wide; then the one covering later years) supplies all its rows. "
            "Unallocated emissions (no authority code) and unparseable numbers go to quarantine."
        ),
        columns=EMISSIONS_COLUMNS,
        primary_key=EMISSIONS_KEY,
    ),
    SilverTable(
        ref=EDUCATION,
        inputs=(EES_DATA, EES_METADATA),
        conform=conform_education,
        description=(
            "Every DfE Explore Education Statistics file in one long shape: one row per publication, period, "
            "geography, filter combination and indicator. Filters and indicators come from each file's "
            ".meta.csv, or, without one, from the cells (mostly numbers or suppression symbols: indicator). "
            "Suppressed cells keep their symbol with a null value; text in an indicator cell is quarantined."
        ),
        columns=EDUCATION_COLUMNS,
        primary_key=EDUCATION_KEY,
        streamed=EDUCATION_STREAMED,
    ),
    SilverTable(
        ref=BENCHMARKS,
        inputs=(INDICATOR_FILES,),
        conform=conform_benchmarks,
        description=(
            "Comparator indicators from LG Inform-style long files, OHID Fingertips exports, Oflog exports and "
            "ONS spreadsheet exports (layout detected per file from its columns), one row per indicator, "
            "measure, area, period and breakdown (filters: sex, age, category …), with 95% and 99.8% "
            "confidence limits, count, denominator, comparisons, median, rank order and polarity where "
            "published; is_headline marks each area's whole-population row. Missing values are kept as nulls "
            "with the reason in value_note; text where a number belongs and a second row for the same key "
            "are quarantined."
        ),
        columns=BENCHMARK_COLUMNS,
        primary_key=BENCHMARK_KEY,
    ),
]
