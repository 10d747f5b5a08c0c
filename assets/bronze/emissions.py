"""DESNZ (formerly BEIS) local authority greenhouse-gas emissions: the long files and the legacy wide tables."""

from kpi_lake.bronze import FileTable

FILE_TABLES = [
    FileTable(
        source="emissions",
        table="ghg_long",
        patterns=("*.csv",),
        required_columns=("calendar_year",),
        description=(
            "DESNZ local authority emissions in the long layout (one row per authority, year, sector, "
            "sub-sector and gas; the current GHG release and the older CO2-only release), as landed."
        ),
    ),
    FileTable(
        source="emissions",
        table="co2_wide",
        patterns=("*.csv",),
        required_columns=("year", "grand_total"),
        description=(
            "BEIS legacy wide CO2 tables (one column per sub-sector, one row per authority and year), "
            "as landed, title rows skipped."
        ),
    ),
]
