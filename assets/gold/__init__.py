"""Gold assets: the SQL models of ``dbt_like_sql/`` (silver KPI catalogue and gold KPI mart), the fact table
(``assets/gold/kpi_mart.py``), SPC and the target review (``assets/gold/spc.py``). See docs/SQL_MODELS.md and
docs/KPI_MART.md."""

from assets.gold.kpi_mart import kpi_mart_assets
from assets.gold.spc import spc_assets
from assets.gold.sql_models import SQL_MODELS_ROOT, sql_model_assets, sql_model_assets_from_tree

__all__ = [
    "SQL_MODELS_ROOT",
    "kpi_mart_assets",
    "spc_assets",
    "sql_model_assets",
    "sql_model_assets_from_tree",
]
