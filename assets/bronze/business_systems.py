"""The council's internal business systems, extracted from their databases incrementally.

Each run reads the rows changed since the table's watermark less a look-back (late-arriving changes, clock
skew), and every few days the whole table (a full reconciliation; only rows that differ are written). The
defaults come from ``KPI_LAKE_DB_LOOKBACK_HOURS`` (72) and ``KPI_LAKE_DB_FULL_RECONCILIATION_DAYS`` (7);
``TABLE_SETTINGS`` below overrides them for one table.
"""

import datetime as dt
import os

from kpi_lake.bronze import DEFAULT_FULL_RECONCILIATION, DEFAULT_LOOKBACK, DatabaseTable
from kpi_lake.business_tables import BUSINESS_TABLES


def _setting(variable: str, unit: str, default: dt.timedelta) -> dt.timedelta:
    value = os.environ.get(variable)
    if not value:
        return default
    try:
        amount = float(value)
    except ValueError:
        raise ValueError(f"{variable}={value!r}: expected a number of {unit}") from None
    if amount < 0:
        raise ValueError(f"{variable}={value!r}: expected a number of {unit}, not negative")
    return dt.timedelta(**{unit: amount})


LOOKBACK = _setting("KPI_LAKE_DB_LOOKBACK_HOURS", "hours", DEFAULT_LOOKBACK)
FULL_RECONCILIATION = _setting("KPI_LAKE_DB_FULL_RECONCILIATION_DAYS", "days", DEFAULT_FULL_RECONCILIATION)

#: Per-table exceptions to the defaults, e.g. a table corrected weeks after the event:
#: ``{"council_tax_payments": {"lookback": dt.timedelta(days=14)}}``.
TABLE_SETTINGS: dict[str, dict[str, dt.timedelta]] = {}

DATABASE_TABLES = [
    DatabaseTable(
        source="business_systems",
        table=table,
        primary_key=key,
        description=(
            f"The business-system table `{table}`, mirrored incrementally: rows changed since the last "
            f"`updated_at` (less a look-back) are merged on `{key}`, and the whole table every few days; rows "
            "deleted at source are kept, flagged `_deleted_in_source`. Rows with a NULL or repeated key go "
            f"to `{table}_rejected` with the reason."
        ),
        **{
            "lookback": LOOKBACK,
            "full_reconciliation_every": FULL_RECONCILIATION,
            **TABLE_SETTINGS.get(table, {}),
        },
    )
    for table, key in BUSINESS_TABLES.items()
]
