"""SQL models (``dbt_like_sql/``): one SELECT per file, dependencies parsed from the SQL, run on polars or
DuckDB over the lake's Delta tables. See docs/SQL_MODELS.md; ``assets/gold/sql_models.py`` makes them assets.

Each name is imported from its module when first used: loading the code location needs the models (from the
parsed-model cache) but neither the parser (sqlglot) nor the engines."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "TestOutcome": "checks",
    "evaluate_test": "checks",
    "ENGINES": "config",
    "ColumnDoc": "config",
    "ColumnTest": "config",
    "ModelConfig": "config",
    "BuildResult": "engines",
    "CompiledModel": "engines",
    "build_model": "engines",
    "compile_model": "engines",
    "DEFAULT_ENGINE": "loading",
    "SqlModel": "loading",
    "load_sql_models": "loading",
    "Problem": "problems",
    "SqlModelError": "problems",
}

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

if TYPE_CHECKING:
    from kpi_lake.sql_models.checks import TestOutcome, evaluate_test
    from kpi_lake.sql_models.config import ENGINES, ColumnDoc, ColumnTest, ModelConfig
    from kpi_lake.sql_models.engines import BuildResult, CompiledModel, build_model, compile_model
    from kpi_lake.sql_models.loading import DEFAULT_ENGINE, SqlModel, load_sql_models
    from kpi_lake.sql_models.problems import Problem, SqlModelError


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
