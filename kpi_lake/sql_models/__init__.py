"""SQL models (``dbt_like_sql/``): one SELECT per file, dependencies parsed from the SQL, run on polars or
DuckDB over the lake's Delta tables. See docs/SQL_MODELS.md; ``assets/gold/sql_models.py`` makes them assets."""

from kpi_lake.sql_models.checks import TestOutcome, evaluate_test
from kpi_lake.sql_models.config import ENGINES, ColumnDoc, ColumnTest, ModelConfig
from kpi_lake.sql_models.engines import BuildResult, CompiledModel, build_model, compile_model
from kpi_lake.sql_models.loading import DEFAULT_ENGINE, SqlModel, load_sql_models
from kpi_lake.sql_models.parsing import Problem, SqlModelError

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "BuildResult",
    "ColumnDoc",
    "ColumnTest",
    "CompiledModel",
    "ModelConfig",
    "Problem",
    "SqlModel",
    "SqlModelError",
    "TestOutcome",
    "build_model",
    "compile_model",
    "evaluate_test",
    "load_sql_models",
]
