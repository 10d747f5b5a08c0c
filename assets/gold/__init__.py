"""Gold assets: the SQL models of ``dbt_like_sql/`` (silver KPI catalogue and gold KPI mart). See
``assets/gold/sql_models.py`` and docs/SQL_MODELS.md."""

from assets.gold.sql_models import SQL_MODELS_ROOT, sql_model_assets, sql_model_assets_from_tree

__all__ = ["SQL_MODELS_ROOT", "sql_model_assets", "sql_model_assets_from_tree"]
