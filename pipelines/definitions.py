"""The kpi-lake code location: every asset, the nightly job and its schedule, and the resources."""

import dagster as dg

from assets.bronze import bronze_assets
from assets.gold import kpi_mart_assets, sql_model_assets_from_tree
from assets.silver import silver_assets
from pipelines.environment import get_resources
from pipelines.jobs import nightly_schedule, nightly_sync

defs = dg.Definitions(
    assets=[
        *bronze_assets,
        *silver_assets,
        *kpi_mart_assets,
        *sql_model_assets_from_tree(python_assets=[*bronze_assets, *silver_assets, *kpi_mart_assets]),
    ],
    jobs=[nightly_sync],
    schedules=[nightly_schedule],
    resources=get_resources(),
)
