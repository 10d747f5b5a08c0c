"""Silver assets: one conformed, typed, documented table (and its quarantine) per spec. See ``kpi_lake.conform``."""

from assets.silver import business_systems, open_data, qol_survey, reference, spar_net
from assets.silver.factory import SilverTable, silver_asset

SILVER_TABLES: list[SilverTable] = [
    *spar_net.SILVER_TABLES,
    *business_systems.SILVER_TABLES,
    *open_data.SILVER_TABLES,
    *reference.SILVER_TABLES,
    *qol_survey.SILVER_TABLES,
]

silver_assets = [silver_asset(spec) for spec in SILVER_TABLES]
