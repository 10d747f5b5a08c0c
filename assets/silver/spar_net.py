"""Silver tables for SPAR.net: the KPI catalogue and the reported values, typed and one row per key."""

from assets.silver.factory import SilverTable
from kpi_lake.conform.spar_net import (
    DEFINITION_COLUMNS,
    VALUE_COLUMNS,
    conform_kpi_definitions,
    conform_kpi_values,
)
from kpi_lake.tables import TableRef

BRONZE_DEFINITIONS = TableRef("bronze", "spar_net", "kpi_definitions")
BRONZE_VALUES = TableRef("bronze", "spar_net", "kpi_values")

SILVER_TABLES = [
    SilverTable(
        ref=TableRef("silver", "spar_net", "kpi_definitions"),
        inputs=(BRONZE_DEFINITIONS, BRONZE_VALUES),
        conform=conform_kpi_definitions,
        description=(
            "One row per KPI known to SPAR.net: name, definition, unit, polarity, frequency, owner, themes and "
            "RAG tolerance, from the newest definitions export (value exports fill in KPIs it lacks)."
        ),
        columns=DEFINITION_COLUMNS,
        primary_key=("kpi_code",),
    ),
    SilverTable(
        ref=TableRef("silver", "spar_net", "kpi_values"),
        inputs=(BRONZE_VALUES,),
        conform=conform_kpi_values,
        description=(
            "One row per KPI and period as SPAR.net reported it: actual, target, RAG, commentary, status; "
            "periods normalised whatever label style the export used; the newest export wins."
        ),
        columns=VALUE_COLUMNS,
        primary_key=("kpi_code", "period_key"),
    ),
]
