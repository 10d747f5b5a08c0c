"""Silver reference data: the geography lookup, the council's comparator groups and its corporate themes."""

from assets.silver.factory import SilverTable
from kpi_lake.conform.reference import (
    COMPARATOR_COUNCILS,
    COMPARATOR_GROUPS,
    CORPORATE_THEMES,
    GEOGRAPHIES,
    LA_LOOKUP,
    THEMES,
    WARD_LOOKUP,
    conform_comparator_groups,
    conform_geographies,
    conform_themes,
)

GEOGRAPHY_COLUMNS = {
    "geography_code": "ONS (GSS) code: E05… ward, E06–E09 / W06 / S12 / N09 local authority, E10 county, "
    "E12 region, E92 country.",
    "geography_name": "Name as the lookup prints it.",
    "geography_level": "ward, local_authority, upper_tier, region or country. A unitary authority is its own "
    "upper tier and appears once, as local_authority.",
    "parent_code": "Code of the next level up (ward → local authority → upper tier or region), from the newest "
    "lookup that names one; null at the top or when no lookup does.",
    "parent_level": "Level of the parent.",
    "valid_from_year": "Year of the lookup's codes, from its headers (WD19CD → 2019, LTLA23CD → 2023). A code "
    "in several lookups keeps the newest lookup's row.",
    "source_file": "Landed lookup file.",
    "source_row": "Row of the lookup file the geography was first read from.",
}

COMPARATOR_COLUMNS = {
    "group_name": "The comparator group: the file's group column; else 'DfE statistical neighbours' when the file "
    "name says so, otherwise 'CIPFA nearest neighbours'.",
    "own_geography_code": "The council the group is for, when the file says so (an own_area_code or "
    "comparator_of column); null otherwise.",
    "comparator_code": "ONS code of the comparator council.",
    "comparator_name": "Name of the comparator council.",
    "rank": "Nearness rank, when the file gives one.",
    "source_file": "Landed file.",
    "source_row": "Row of the landed file.",
}

THEME_COLUMNS = {
    "theme_code": "Corporate strategy theme code.",
    "theme_name": "Theme name (Children and Young People, Economy and Skills, …).",
    "owning_director": "The one director who owns the theme. Themes with no owner or two are quarantined.",
    "director_title": "The owner's job title, where the file gives it.",
    "source_file": "Landed file.",
    "source_row": "Row of the landed file.",
}

SILVER_TABLES = [
    SilverTable(
        ref=GEOGRAPHIES,
        inputs=(WARD_LOOKUP, LA_LOOKUP),
        conform=conform_geographies,
        description=(
            "Every geography named by the ONS ward→district and lower→upper tier lookups, one row per code, "
            "with its parent and the year of the lookup's codes. Malformed codes and repeated wards are "
            "quarantined."
        ),
        columns=GEOGRAPHY_COLUMNS,
        primary_key=("geography_code",),
    ),
    SilverTable(
        ref=COMPARATOR_GROUPS,
        inputs=(COMPARATOR_COUNCILS,),
        conform=conform_comparator_groups,
        description=(
            "The council's comparator groups (CIPFA nearest neighbours and others): one row per group and "
            "comparator council."
        ),
        columns=COMPARATOR_COLUMNS,
        primary_key=("group_name", "own_geography_code", "comparator_code"),
    ),
    SilverTable(
        ref=THEMES,
        inputs=(CORPORATE_THEMES,),
        conform=conform_themes,
        description=(
            "The corporate strategy's themes, each with exactly one owning director; a theme with no owner "
            "or with two is quarantined whole."
        ),
        columns=THEME_COLUMNS,
        primary_key=("theme_code",),
    ),
]
