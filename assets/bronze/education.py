"""DfE Explore Education Statistics files (KS2, KS4, absence, NEET) and their .meta.csv descriptions."""

from kpi_lake.bronze import FileTable

FILE_TABLES = [
    FileTable(
        source="education",
        table="ees_data",
        patterns=("*.csv",),
        exclude=("*.meta.csv",),
        required_columns=("time_period", "time_identifier", "geographic_level"),
        description=(
            "Every EES data file in landing/education as landed; columns are the union of the files' columns "
            "(each file's rows fill its own), so any new EES file is picked up with no code change."
        ),
    ),
    FileTable(
        source="education",
        table="ees_metadata",
        patterns=("*.meta.csv",),
        required_columns=("col_name", "col_type"),
        description="EES .meta.csv files: column type (Filter/Indicator), label and unit per column per file.",
    ),
]
