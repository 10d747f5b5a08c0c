"""Find the models under a folder, parse them once, resolve what each reads, and refuse cycles and duplicates.

``<root>/<layer>/<source>/<name>.sql`` is the table ``TableRef(layer, source, name)``; ``<name>.yml`` beside it
is its config. Loading reads no data and imports no engine, so the code location reloads quickly.
"""

from __future__ import annotations

import graphlib
import hashlib
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpi_lake.sql_models.cache import cached_models
from kpi_lake.sql_models.config import ModelConfig, read_config
from kpi_lake.sql_models.problems import Problem, SqlModelError
from kpi_lake.tables import TableRef

if TYPE_CHECKING:
    from sqlglot import exp

#: Which engine runs a model whose YAML does not choose one (see docs/SQL_MODELS.md for the measurement).
DEFAULT_ENGINE = "polars"
#: SQL models build silver and gold; bronze is what landed, written by the landing code only.
MODEL_LAYERS = ("silver", "gold")


@dataclass(frozen=True)
class SqlModel:
    """One ``.sql`` file: the table it writes, the tables it reads, its parsed query and its YAML config."""

    name: str
    ref: TableRef
    display_path: str
    sql: str
    config: ModelConfig
    query: exp.Query = field(repr=False, compare=False)
    inputs: tuple[TableRef, ...] = ()
    model_inputs: tuple[str, ...] = ()
    reads_this: bool = False
    description: str = ""
    default_engine: str = DEFAULT_ENGINE

    @property
    def engine(self) -> str:
        return self.config.engine or self.default_engine

    # A cached model (kpi_lake.sql_models.cache) keeps its parsed query as a pickle of its own, unpickled (and
    # sqlglot imported) the first time the query is used: the code location loads models without the parser.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "query" in state:
            state["_query_pickle"] = pickle.dumps(state.pop("query"), protocol=pickle.HIGHEST_PROTOCOL)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __getattr__(self, name: str) -> Any:
        if name == "query" and "_query_pickle" in self.__dict__:
            query = pickle.loads(self.__dict__.pop("_query_pickle"))
            self.__dict__["query"] = query
            return query
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def yml_path(self) -> str:
        return self.display_path.removesuffix(".sql") + ".yml"

    @property
    def code_version(self) -> str:
        """Changes when the SQL or the YAML changes, so Dagster can show a model as changed since it last ran."""
        return hashlib.sha256((self.sql + "\0" + self.config.text).encode()).hexdigest()[:16]


def load_sql_models(
    root: Path | str,
    *,
    known_tables: Iterable[TableRef] | None = None,
    default_engine: str = DEFAULT_ENGINE,
) -> list[SqlModel]:
    """Every model under ``root``, in dependency order (a model after the models it reads).

    ``known_tables`` are the tables Python assets write; when given, a model reading a table that is neither
    one of them nor another model fails here rather than at run time. Raises :class:`SqlModelError` listing
    every problem found (file, line, what was expected): broken SQL, unknown references, duplicate names,
    misplaced files, bad YAML, dependency cycles.

    The parsed models are cached (see :mod:`kpi_lake.sql_models.cache`) under a key made of every file's
    bytes, the arguments and the parser's own code, so an unchanged tree is not parsed again each time the
    code location loads; a tree with problems is never cached and says so every time.
    """
    root = Path(root)
    if not root.is_dir():
        raise SqlModelError(Problem(root.name, "the SQL models folder does not exist"))
    known = sorted(known_tables) if known_tables is not None else None
    return cached_models(root, (known, default_engine), lambda: _load_sql_models(root, known, default_engine))


def _load_sql_models(
    root: Path, known_tables: Iterable[TableRef] | None, default_engine: str
) -> list[SqlModel]:
    from kpi_lake.sql_models.parsing import is_model_name

    base = root.parent
    problems: list[Problem] = []
    files: dict[str, Path] = {}
    refs: dict[str, TableRef] = {}

    for path in sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root))):
        display = path.relative_to(base).as_posix()
        if path.suffix == ".yaml":
            problems.append(Problem(display, "name model config files .yml (one spelling, like the models)"))
            continue
        if path.suffix == ".yml" and not path.with_suffix(".sql").exists():
            problems.append(Problem(display, f"no model {path.stem}.sql beside this YAML"))
            continue
        if path.suffix != ".sql":
            continue
        parts = path.relative_to(root).parts
        if len(parts) != 3:
            problems.append(
                Problem(
                    display,
                    "a model lives at <layer>/<source>/<name>.sql (e.g. gold/kpi_mart/fct_kpi_value.sql)",
                )
            )
            continue
        layer, source, name = parts[0], parts[1], path.stem
        if layer not in MODEL_LAYERS:
            problems.append(
                Problem(display, f"layer folder must be one of {', '.join(MODEL_LAYERS)}, not {layer!r}")
            )
            continue
        bad = [part for part in (source, name) if not is_model_name(part)]
        if bad:
            problems.append(Problem(display, f"{bad[0]!r} is not a lower-case snake_case name"))
            continue
        if name in files:
            problems.append(
                Problem(
                    display,
                    f"model name {name!r} is also used by {files[name].relative_to(base).as_posix()}: "
                    "ref() finds models by file name, so names must be unique across the tree",
                )
            )
            continue
        files[name] = path
        refs[name] = TableRef(layer, source, name)  # type: ignore[arg-type]

    known = set(known_tables) if known_tables is not None else None
    model_tables = {ref: name for name, ref in refs.items()}
    models: dict[str, SqlModel] = {}
    for name, path in files.items():
        try:
            models[name] = _load_model(name, path, base, refs, model_tables, known, default_engine)
        except SqlModelError as error:
            problems.extend(error.problems)
    if known is not None:
        for model in models.values():
            if model.ref in known:
                problems.append(
                    Problem(model.display_path, f"table {model.ref} is already written by a Python asset")
                )
    if problems:
        raise SqlModelError(problems)
    return _in_dependency_order(models)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _load_model(
    name: str,
    path: Path,
    base: Path,
    refs: dict[str, TableRef],
    model_tables: dict[TableRef, str],
    known: set[TableRef] | None,
    default_engine: str,
) -> SqlModel:
    from kpi_lake.sql_models.parsing import (
        leading_comment,
        node_position,
        parse_query,
        rewrite_macros,
        table_uses,
    )

    display = path.relative_to(base).as_posix()
    sql = path.read_text(encoding="utf-8")
    problems: list[Problem] = []
    config = ModelConfig()
    yml = path.with_suffix(".yml")
    if yml.exists():
        config, config_problems = read_config(yml, yml.relative_to(base).as_posix(), refs.get)
        problems += config_problems

    rewritten = rewrite_macros(sql, display, refs.get)
    if rewritten.problems:
        raise SqlModelError([*rewritten.problems, *problems])
    query = parse_query(rewritten, display)

    inputs: list[TableRef] = []
    reads_this = False
    for use in table_uses(query, set(refs)):
        line, col = node_position(use.node, sql)
        if use.problem:
            problems.append(Problem(display, use.problem, line, col))
        elif use.is_this:
            reads_this = True
        elif use.ref is not None:
            if use.ref == refs[name]:
                problems.append(
                    Problem(
                        display,
                        f"the model reads its own table {use.ref}; an incremental model uses `this`",
                        line,
                        col,
                    )
                )
            elif use.ref not in model_tables and known is not None and use.ref not in known:
                problems.append(
                    Problem(display, f"reads {use.ref}, which no model or Python asset writes", line, col)
                )
            elif use.ref not in inputs:
                inputs.append(use.ref)
    if reads_this and config.materialized != "incremental":
        problems.append(Problem(display, "only an incremental model may read `this` (its own table)"))
    if problems:
        raise SqlModelError(problems)
    return SqlModel(
        name=name,
        ref=refs[name],
        display_path=display,
        sql=sql,
        config=config,
        query=query,
        inputs=tuple(sorted(inputs)),
        model_inputs=tuple(sorted(model_tables[ref] for ref in inputs if ref in model_tables)),
        reads_this=reads_this,
        description=config.description or leading_comment(sql) or f"SQL model {display}",
        default_engine=default_engine,
    )


def _in_dependency_order(models: dict[str, SqlModel]) -> list[SqlModel]:
    sorter = graphlib.TopologicalSorter({name: model.model_inputs for name, model in models.items()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as error:
        cycle: list[str] = error.args[1]
        chain = " → ".join(models[name].display_path for name in cycle)
        raise SqlModelError(
            Problem(models[cycle[0]].display_path, f"dependency cycle between models: {chain}")
        ) from None
    return [models[name] for name in order]
