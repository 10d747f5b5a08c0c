"""Run a model: compile its query for an engine (tables renamed to the frames registered for it), execute it on
polars (lazy, over Delta scans) or DuckDB (over Arrow datasets of the Delta tables), and write the result.

DuckDB is imported only when a model runs on it: loading models must stay cheap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl
from sqlglot import exp

from kpi_lake import rebuild
from kpi_lake.sql_models.config import ENGINES
from kpi_lake.sql_models.loading import SqlModel
from kpi_lake.sql_models.parsing import (
    DIALECT,
    Problem,
    SqlModelError,
    first_mention,
    node_position,
    table_uses,
)
from kpi_lake.tables import TableRef

THIS_NAME = "this_table"
_QUOTED = re.compile(r"""["'`]([^"'`]+)["'`]|with name (\w+)""")
_SMALL_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


class Lake(Protocol):
    """What running a model needs from the lake (``resources.lake.DeltaLake`` provides it)."""

    def exists(self, ref: TableRef) -> bool: ...
    def scan(self, ref: TableRef) -> pl.LazyFrame: ...
    def delta_table(self, ref: TableRef) -> Any: ...
    def overwrite(
        self,
        ref: TableRef,
        data: pl.DataFrame | pl.LazyFrame,
        *,
        commit_metadata: dict[str, str] | None = None,
    ) -> Any: ...
    def version(self, ref: TableRef) -> int | None: ...
    def last_commit_metadata(self, ref: TableRef) -> dict[str, str]: ...
    def state(self, ref: TableRef, operation: str = "read") -> Any: ...
    def merge(
        self,
        ref: TableRef,
        data: pl.DataFrame | pl.LazyFrame,
        keys: list[str],
        *,
        only_if_changed: list[str] | None,
    ) -> Any: ...


@dataclass(frozen=True)
class CompiledModel:
    """A model's query as one engine runs it: the SQL and the lake table behind each registered name."""

    model: SqlModel
    engine: str
    sql: str
    inputs: dict[str, TableRef]
    reads_this: bool


@dataclass(frozen=True)
class BuildResult:
    state: Any  # resources.lake.TableState
    engine: str
    sql: str
    seconds: float
    skipped: bool = False  # inputs and SQL unchanged since the table was last built: nothing was written


def registered_name(ref: TableRef) -> str:
    """The name a lake table is registered under in the engine (a plain identifier, readable in errors)."""
    return f"{ref.layer}__{ref.source}__{ref.table}"


def compile_model(model: SqlModel, engine: str | None = None) -> CompiledModel:
    """Rewrite the model's parsed query for ``engine``: each lake table becomes its registered name (aliased to
    its table name, so ``kpi_values.actual`` still works), and for polars, constructs it lacks are translated."""
    engine = engine or model.engine
    if engine not in ENGINES:
        raise SqlModelError(
            Problem(model.display_path, f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        )
    tree = model.query.copy()
    inputs: dict[str, TableRef] = {}
    for use in table_uses(tree):
        if use.problem:  # caught at load; kept so a hand-built model cannot slip through
            raise SqlModelError(Problem(model.display_path, use.problem))
        name = THIS_NAME if use.is_this else registered_name(use.ref)  # type: ignore[arg-type]
        if use.ref is not None:
            inputs[name] = use.ref
        table_name = use.node.name
        alias = use.node.args.get("alias")
        use.node.replace(
            exp.Table(
                this=exp.to_identifier(name),
                alias=alias or exp.TableAlias(this=exp.to_identifier(table_name)),
            )
        )
    # In place: the tree is already this compile's own copy (each transform would copy it again, and copying
    # a mart model's tree costs more than running it at sample size).
    tree = tree.transform(_for_polars if engine == "polars" else _decimal_literal_as_double, copy=False)
    if engine == "polars":
        tree = tree.transform(_decimal_literal_as_double, copy=False)
    return CompiledModel(model, engine, tree.sql(dialect=DIALECT), inputs, model.reads_this)


def _decimal_literal_as_double(node: exp.Expression) -> exp.Expression:
    """``100.0 * met / total`` is a decimal in polars and a double in DuckDB; ``1.5`` alone is a decimal in
    both. Writing such literals as ``1.5e0`` makes them doubles in both engines, so a model's column types do
    not depend on the engine (``cast(x as decimal(p, s))`` still gives a decimal where one is wanted)."""
    if isinstance(node, exp.Literal) and not node.is_string:
        text = str(node.this)
        if "." in text and "e" not in text.lower():
            return exp.Literal.number(f"{text}e0")
    return node


def _for_polars(node: exp.Expression) -> exp.Expression:
    """polars SQL has ``quantile_cont(x, p)`` but not ``percentile_cont(p) within group (order by x)``."""
    if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont | exp.PercentileDisc):
        order = node.expression
        ordered = (
            order.expressions[0] if isinstance(order, exp.Order) and len(order.expressions) == 1 else None
        )
        fraction = node.this.this
        if ordered is not None and isinstance(fraction, exp.Literal) and not fraction.is_string:
            value = float(fraction.this)
            if ordered.args.get("desc"):
                value = round(1 - value, 12)
            function = "quantile_cont" if isinstance(node.this, exp.PercentileCont) else "quantile_disc"
            return exp.Anonymous(this=function, expressions=[ordered.this.copy(), exp.Literal.number(value)])
    return node


# ---- running ---------------------------------------------------------------------------------------------


def run_polars(compiled: CompiledModel, frames: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """The model as a LazyFrame over the registered frames (nothing is computed until it is written)."""
    return _run_polars(compiled, frames)[0]


def _run_polars(
    compiled: CompiledModel, frames: Mapping[str, pl.LazyFrame]
) -> tuple[pl.LazyFrame, list[str]]:
    """The model's LazyFrame and its column names."""
    try:
        context = pl.SQLContext(frames=dict(frames), eager=False)
        result = context.execute(compiled.sql)
        # Resolve names and types now, so errors name the model before any write; the schema resolved here
        # is the only one: resolving a SQL query's plan again costs as much each time.
        schema = result.collect_schema()
    except Exception as error:
        raise SqlModelError(engine_problem(compiled, error)) from error
    narrow = [name for name, dtype in schema.items() if dtype in _SMALL_INTEGERS]
    return (result.with_columns(pl.col(narrow).cast(pl.Int64)) if narrow else result), list(schema)


def run_duckdb(compiled: CompiledModel, tables: Mapping[str, Any]) -> pl.DataFrame:
    """The model computed by DuckDB over Arrow datasets/tables, returned as a polars DataFrame."""
    import duckdb  # here, not at module level: loading the code location must not pay for DuckDB

    connection = duckdb.connect(":memory:")
    try:
        # Casts of the lake's UTC timestamps to dates must not depend on the host's time zone.
        connection.execute("set TimeZone = 'UTC'")
        for name, table in tables.items():
            connection.register(name, table)
        relation = connection.sql(compiled.sql)
        # sum() of integers is HUGEINT in DuckDB, which Arrow can only carry as decimal(38, 0).
        projection = [
            f'cast("{column}" as bigint) as "{column}"'
            if str(kind) in ("HUGEINT", "UHUGEINT")
            else f'"{column}"'
            for column, kind in zip(relation.columns, relation.types, strict=True)
        ]
        frame = pl.from_arrow(relation.project(", ".join(projection)).to_arrow_table())
    except Exception as error:
        raise SqlModelError(engine_problem(compiled, error)) from error
    finally:
        connection.close()
    assert isinstance(frame, pl.DataFrame)
    return widen_integers(frame)


def widen_integers(frame: pl.LazyFrame | pl.DataFrame) -> Any:
    """Integers are written as Int64 whichever engine computed them (polars gives u32 counts and i32 sums,
    DuckDB int64), so switching engine never changes a table's schema."""
    return frame.with_columns(pl.col(*_SMALL_INTEGERS).cast(pl.Int64))


def engine_problem(compiled: CompiledModel, error: Exception) -> Problem:
    """The engine's message, first paragraph only, with the line where it points when it names something."""
    lines = str(error).strip().split("\n\n")[0].splitlines()
    # DuckDB quotes the line of the SQL it ran ("LINE 1: ..."): that is the compiled SQL, not the file.
    message = " ".join(
        line.strip()
        for line in lines
        if line.strip() and not line.startswith(("LINE ", "\t")) and set(line.strip()) != {"^"}
    )
    line = col = None
    for match in _QUOTED.finditer(message.split(";")[0]):
        name = match[1] or match[2]
        position = first_mention(compiled.model.sql, name.split(".")[-1])
        if position:
            line, col = position
            break
    return Problem(
        compiled.model.display_path,
        f"{compiled.engine} could not run the model: {type(error).__name__}: {message}",
        line,
        col,
    )


def empty_this(model: SqlModel) -> pl.DataFrame:
    """``this`` before an incremental model's first run: no rows, with the YAML's column types."""
    untyped = [c.name for c in model.config.columns if not c.data_type]
    if not model.config.columns or untyped:
        raise SqlModelError(
            Problem(
                model.yml_path,
                "the model reads `this`, but its table does not exist yet; give every column a data_type in the "
                f"YAML so the first run has an empty table to read (untyped: {', '.join(untyped) or 'no columns'})",
            )
        )
    select = ", ".join(f'cast(null as {c.data_type}) as "{c.name}"' for c in model.config.columns)
    return pl.SQLContext().execute(f"select {select} limit 0", eager=True)


def build_model(model: SqlModel, lake: Lake, *, engine: str | None = None) -> BuildResult:
    """Compute the model from the lake and write its table: overwrite (``table``) or merge on ``unique_key``,
    updating only rows that changed (``incremental``). Returns the lake's state of the table."""
    started = time.perf_counter()
    compiled = compile_model(model, engine)
    # Work proportional to change: a table model whose inputs are at the versions it was built from, with
    # the same SQL, is already right. (Incremental models merge, and an unchanged merge writes nothing.)
    built_from = rebuild.fingerprint(lake, compiled.inputs.values(), f"{compiled.engine}\n{compiled.sql}")
    if model.config.materialized != "incremental" and rebuild.is_current(lake, model.ref, built_from):
        state = lake.state(model.ref, operation="unchanged")
        return BuildResult(state, compiled.engine, compiled.sql, time.perf_counter() - started, skipped=True)
    missing = [ref for ref in compiled.inputs.values() if not lake.exists(ref)]
    if missing:
        problems = []
        for ref in missing:
            line, col = _position_of(model, ref)
            problems.append(
                Problem(
                    model.display_path,
                    f"reads {ref}, which is not in the lake yet: materialise it first",
                    line,
                    col,
                )
            )
        raise SqlModelError(problems)
    this_exists = compiled.reads_this and lake.exists(model.ref)
    if compiled.engine == "polars":
        frames = {name: lake.scan(ref) for name, ref in compiled.inputs.items()}
        if compiled.reads_this:
            frames[THIS_NAME] = lake.scan(model.ref) if this_exists else empty_this(model).lazy()
        result: pl.LazyFrame | pl.DataFrame
        result, columns = _run_polars(compiled, frames)
    else:
        # Arrow tables, not datasets: DuckDB pushes string filters into an Arrow dataset scan as string_view
        # scalars, which Arrow cannot compare with the lake's string columns ("no kernel matching (string,
        # string_view)"). The cost is that DuckDB models read their inputs into memory; polars streams.
        tables = {name: lake.delta_table(ref).to_pyarrow_table() for name, ref in compiled.inputs.items()}
        if compiled.reads_this:
            tables[THIS_NAME] = (
                lake.delta_table(model.ref).to_pyarrow_table()
                if this_exists
                else empty_this(model).to_arrow()
            )
        result = run_duckdb(compiled, tables)
        columns = result.columns
    missing_keys = [key for key in model.config.unique_key if key not in columns]
    if missing_keys:
        raise SqlModelError(
            Problem(
                model.yml_path,
                f"unique_key column(s) {', '.join(missing_keys)} are not in the model's result",
            )
        )
    try:
        if model.config.materialized == "incremental":
            keys = list(model.config.unique_key)
            state = lake.merge(model.ref, result, keys, only_if_changed=[c for c in columns if c not in keys])
        else:
            state = lake.overwrite(model.ref, result, commit_metadata={rebuild.BUILT_FROM: built_from})
    except SqlModelError:
        raise
    except Exception as error:
        raise SqlModelError(engine_problem(compiled, error)) from error
    return BuildResult(state, compiled.engine, compiled.sql, time.perf_counter() - started)


def _position_of(model: SqlModel, ref: TableRef) -> tuple[int | None, int | None]:
    for use in table_uses(model.query):
        if use.ref == ref:
            return node_position(use.node, model.sql)
    return None, None
