"""Gold assets: the SQL models of ``dbt_like_sql/`` (silver KPI catalogue and gold KPI mart) and the mart's one
Python asset, the fact table (``assets/gold/kpi_mart.py``). See docs/SQL_MODELS.md and docs/KPI_MART.md."""

from assets.gold.kpi_mart import kpi_mart_assets
from assets.gold.sql_models import SQL_MODELS_ROOT, sql_model_assets, sql_model_assets_from_tree

__all__ = ["SQL_MODELS_ROOT", "kpi_mart_assets", "sql_model_assets", "sql_model_assets_from_tree"]
