"""A model's YAML: description, materialisation, unique key, engine, tags, and column docs with their tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kpi_lake.sql_models.problems import Problem, SqlModelError
from kpi_lake.tables import TableRef

# sqlglot (kpi_lake.sql_models.parsing) is imported in the functions that check a YAML: models loaded from the
# cache (kpi_lake.sql_models.cache) need these classes, not the parser.

#: libyaml's loader when PyYAML was built with it (several times faster: the code location reads every model's
#: YAML at load), else the pure-Python one; both safe.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Materialization = Literal["table", "incremental"]
MATERIALIZATIONS: tuple[str, ...] = ("table", "incremental")
ENGINES: tuple[str, ...] = ("polars", "duckdb")
TEST_KINDS: tuple[str, ...] = ("not_null", "unique", "accepted_values", "relationships")
MODEL_KEYS = ("description", "materialized", "unique_key", "engine", "columns", "tags")
COLUMN_KEYS = ("name", "description", "data_type", "tests", "data_tests")
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


@dataclass(frozen=True)
class ColumnTest:
    """A dbt-style column test, run as a Dagster asset check after each materialisation."""

    column: str
    kind: str
    values: tuple[Any, ...] = ()
    to: TableRef | None = None
    to_text: str | None = None
    field: str | None = None

    @property
    def check_name(self) -> str:
        return f"{self.column}_{self.kind}"

    @property
    def description(self) -> str:
        if self.kind == "not_null":
            return f"{self.column} is never null"
        if self.kind == "unique":
            return f"{self.column} is unique (nulls aside)"
        if self.kind == "accepted_values":
            return f"{self.column} is one of {', '.join(map(str, self.values))} (or null)"
        return f"every {self.column} is a {self.field} in {self.to} (or null)"


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    description: str = ""
    data_type: str | None = None
    tests: tuple[ColumnTest, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """What a model's ``<name>.yml`` says; a model without one is a documented-by-comment ``table``."""

    description: str | None = None
    materialized: Materialization = "table"
    unique_key: tuple[str, ...] = ()
    engine: str | None = None
    columns: tuple[ColumnDoc, ...] = ()
    tags: tuple[str, ...] = ()
    text: str = field(default="", repr=False)

    @property
    def tests(self) -> tuple[ColumnTest, ...]:
        return tuple(test for column in self.columns for test in column.tests)


def read_config(
    path: Path, display: str, resolve_ref: Callable[[str], TableRef | None]
) -> tuple[ModelConfig, list[Problem]]:
    """Read and check a model's YAML. Every problem names the file (and the line, for YAML syntax)."""
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        return ModelConfig(), [
            Problem(display, f"YAML syntax error: {getattr(error, 'problem', error)}", line, col)
        ]
    if raw is None:
        return ModelConfig(text=text), []
    if not isinstance(raw, dict):
        return ModelConfig(), [Problem(display, "expected a mapping of keys (description, materialized, …)")]
    problems: list[Problem] = []

    def problem(message: str) -> None:
        problems.append(Problem(display, message))

    unknown = sorted(set(raw) - set(MODEL_KEYS))
    if unknown:
        problem(f"unknown key(s) {', '.join(unknown)}; a model's YAML has {', '.join(MODEL_KEYS)}")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        problem("description must be text")
        description = None
    materialized = raw.get("materialized", "table")
    if materialized not in MATERIALIZATIONS:
        problem(f"materialized must be one of {', '.join(MATERIALIZATIONS)}, not {materialized!r}")
        materialized = "table"
    unique_key = raw.get("unique_key") or []
    if isinstance(unique_key, str):
        unique_key = [unique_key]
    if not isinstance(unique_key, list) or not all(isinstance(k, str) for k in unique_key):
        problem("unique_key must be a column name or a list of them")
        unique_key = []
    if materialized == "incremental" and not unique_key:
        problem("an incremental model needs a unique_key: the columns its rows are merged on")
    engine = raw.get("engine")
    if engine is not None and engine not in ENGINES:
        problem(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        engine = None
    tags = raw.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and _TAG.match(t) for t in tags):
        problem("tags must be a list of short names (letters, digits, _ . -; up to 63 characters)")
        tags = []
    columns = _read_columns(raw.get("columns") or [], display, resolve_ref, problems)
    config = ModelConfig(
        description=description.strip() if description else None,
        materialized=materialized,
        unique_key=tuple(unique_key),
        engine=engine,
        columns=columns,
        tags=tuple(tags),
        text=text,
    )
    return config, problems


def _read_columns(
    raw: Any, display: str, resolve_ref: Callable[[str], TableRef | None], problems: list[Problem]
) -> tuple[ColumnDoc, ...]:
    from sqlglot import exp
    from sqlglot.errors import ParseError

    from kpi_lake.sql_models.parsing import DIALECT

    if not isinstance(raw, list):
        problems.append(
            Problem(
                display, "columns must be a list of {name, description, tests}, as in dbt: `- name: kpi_code`"
            )
        )
        return ()
    columns: list[ColumnDoc] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(Problem(display, f"columns entry {index} needs a name: `- name: kpi_code`"))
            continue
        name = entry["name"]
        where = f"column {name}"
        if name in seen:
            problems.append(Problem(display, f"{where} is listed twice"))
        seen.add(name)
        unknown = sorted(set(entry) - set(COLUMN_KEYS))
        if unknown:
            problems.append(Problem(display, f"{where}: unknown key(s) {', '.join(unknown)}"))
        data_type = entry.get("data_type")
        if data_type is not None:
            try:
                data_type = exp.DataType.build(str(data_type), dialect=DIALECT).sql(dialect=DIALECT)
            except (ParseError, ValueError):
                problems.append(Problem(display, f"{where}: data_type {data_type!r} is not a SQL type"))
                data_type = None
        tests = _read_tests(
            name, entry.get("tests", entry.get("data_tests")) or [], display, resolve_ref, problems
        )
        columns.append(ColumnDoc(name, str(entry.get("description") or "").strip(), data_type, tests))
    return tuple(columns)


def _read_tests(
    column: str,
    raw: Any,
    display: str,
    resolve_ref: Callable[[str], TableRef | None],
    problems: list[Problem],
) -> tuple[ColumnTest, ...]:
    from kpi_lake.sql_models.parsing import parse_table_name

    where = f"column {column}"
    if not isinstance(raw, list):
        problems.append(Problem(display, f"{where}: tests must be a list"))
        return ()
    tests: list[ColumnTest] = []
    for entry in raw:
        if isinstance(entry, str):
            kind, options = entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            kind, options = next(iter(entry.items()))
            options = options or {}
        else:
            problems.append(
                Problem(display, f"{where}: a test is a name or {{name: options}}, not {entry!r}")
            )
            continue
        if kind not in TEST_KINDS:
            problems.append(
                Problem(display, f"{where}: unknown test {kind!r}; tests are {', '.join(TEST_KINDS)}")
            )
            continue
        if not isinstance(options, dict):
            problems.append(Problem(display, f"{where}: options of {kind} must be a mapping"))
            continue
        if kind == "accepted_values":
            values = options.get("values")
            if not isinstance(values, list) or not values:
                problems.append(Problem(display, f"{where}: accepted_values needs `values: [...]`"))
                continue
            tests.append(ColumnTest(column, kind, values=tuple(values)))
        elif kind == "relationships":
            to, field_name = options.get("to"), options.get("field")
            if not isinstance(to, str) or not isinstance(field_name, str):
                problems.append(
                    Problem(display, f"{where}: relationships needs `to: ref('model')` and `field: column`")
                )
                continue
            try:
                target = parse_table_name(to, display, resolve_ref)
            except SqlModelError as error:
                problems.extend(
                    Problem(p.path, f"{where}: relationships: {p.message}", p.line, p.col)
                    for p in error.problems
                )
                continue
            tests.append(ColumnTest(column, kind, to=target, to_text=to, field=field_name))
        else:
            tests.append(ColumnTest(column, kind))
    names = [t.check_name for t in tests]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(display, f"{where}: test {name.removeprefix(column + '_')} is listed twice"))
    return tuple(tests)
