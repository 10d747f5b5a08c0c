"""SPAR.net, the council's performance system: KPI definitions and quarterly values exported as CSV/xlsx."""

from kpi_lake.bronze import FileTable

FILE_TABLES = [
    FileTable(
        source="spar_net",
        table="kpi_definitions",
        patterns=("*definitions*.csv", "*definitions*.xlsx"),
        required_columns=("indicator_id",),
        description="SPAR.net KPI catalogue exports as landed: one row per KPI per export, every cell as text.",
    ),
    FileTable(
        source="spar_net",
        table="kpi_values",
        patterns=("spar_export_*.csv", "spar_export_*.xlsx"),
        required_columns=("indicator_id", "period_label", "actual"),
        description=(
            "SPAR.net quarterly exports as landed: actuals, targets, RAG and commentary per KPI and period, "
            "every cell as text, one set of rows per export file."
        ),
    ),
]
