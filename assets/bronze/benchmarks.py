"""Comparator-council indicator files (LG Inform, Oflog, ONS, councils' own), in whatever layout they come."""

from kpi_lake.bronze import FileTable

FILE_TABLES = [
    FileTable(
        source="benchmarks",
        table="indicator_files",
        patterns=("*.csv", "*.xlsx"),
        description=(
            "Benchmark indicator files as landed (long and wide layouts, spreadsheet exports with rows above "
            "the header); columns are the union of the files' columns."
        ),
    ),
]
