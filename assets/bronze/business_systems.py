"""The council's internal business systems, extracted from their databases incrementally."""

from kpi_lake.bronze import DatabaseTable
from kpi_lake.business_tables import BUSINESS_TABLES

DATABASE_TABLES = [
    DatabaseTable(
        source="business_systems",
        table=table,
        primary_key=key,
        description=(
            f"The business-system table `{table}`, mirrored incrementally: rows changed since the last "
            f"`updated_at` are merged on `{key}`; rows deleted at source are kept, flagged `_deleted_in_source`."
        ),
    )
    for table, key in BUSINESS_TABLES.items()
]
