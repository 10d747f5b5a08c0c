"""Expectation suites as data: ``expectations/<layer>/<source>/<table>.yml`` read into :class:`Suite` objects.

A suite names its table, the columns it declares (the schema drift check compares the Delta schema with them),
and a list of expectations, each a Great Expectations 1.x expectation type with its kwargs (evaluated by GX on
a pandas frame) or a ``relationship`` between tables (evaluated with polars: GX 1.x has no cross-table
expectation for dataframes). Loading needs no GX import; :meth:`Suite.to_gx_suite` builds the GX
``ExpectationSuite`` when a check runs. See docs/DATA_QUALITY.md for the file format.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kpi_lake.tables import TableRef

Severity = Literal["warn", "error"]
SEVERITIES: tuple[Severity, ...] = ("warn", "error")
#: GX 1.x's own severity names for ours (shown in Data Docs).
GX_SEVERITY = {"warn": "warning", "error": "critical"}
RELATIONSHIP = "relationship"
#: Check names Dagster accepts (and that read well in the UI).
CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Dagster-native checks every suite gets (configurable per suite), beside its expectations.
NATIVE_CHECKS = ("freshness", "schema_drift", "row_count_change")

#: The column types a suite may declare, each matching a family of polars types (so Int32 and Int64 both
#: satisfy ``int``): what a reader of the table cares about, not the storage width.
TYPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "string": ("String",),
    "int": ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"),
    "float": ("Float32", "Float64", "Decimal"),
    "number": (
        "Int8",
        "Int16",
        "Int32",
        "Int64",
        "UInt8",
        "UInt16",
        "UInt32",
        "UInt64",
        "Float32",
        "Float64",
        "Decimal",
    ),
    "bool": ("Boolean",),
    "date": ("Date",),
    "datetime": ("Datetime",),
    "list": ("List", "Array"),
    "struct": ("Struct",),
    "any": (),
}

# Expectations that describe the whole table (counts, uniqueness, aggregates): evaluated on all rows even when
# only the changed rows of a large table are validated. The rest test each row on its own.
_TABLE_SCOPE = re.compile(
    r"^expect_(table_|compound_columns_to_be_unique|column_values_to_be_unique|select_column_values_to_be_unique"
    r"|column_(mean|median|max|min|sum|stdev|quantile_values|proportion_of_unique_values"
    r"|proportion_of_non_null_values|unique_value_count|distinct_values|most_common_value|kl_divergence)_)"
)
_SHORT_TYPE = [
    ("expect_column_values_to_not_be_null", "not_null"),
    ("expect_column_values_to_be_null", "null"),
    ("expect_column_values_to_be_unique", "unique"),
    ("expect_compound_columns_to_be_unique", "unique"),
    ("expect_column_values_to_be_in_set", "in_set"),
    ("expect_column_values_to_not_be_in_set", "not_in_set"),
    ("expect_column_values_to_be_between", "between"),
    ("expect_column_values_to_match_regex", "format"),
    ("expect_column_value_lengths_to_be_between", "length"),
    ("expect_column_pair_values_a_to_be_greater_than_b", "ordered"),
    ("expect_table_row_count_to_be_between", "row_count"),
    ("expect_column_proportion_of_non_null_values_to_be_between", "filled"),
    ("expect_column_distinct_values_to_be_in_set", "distinct_in_set"),
    ("expect_column_distinct_values_to_equal_set", "distinct_values"),
]


class SuiteError(ValueError):
    """A suite file that cannot be used: names the file, the expectation and what is wrong."""


@dataclass(frozen=True)
class Expectation:
    """One expectation of a suite: a GX expectation (``type`` is its snake_case name) or a relationship."""

    name: str
    type: str
    kwargs: Mapping[str, Any]
    severity: Severity
    description: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_gx(self) -> bool:
        return self.type != RELATIONSHIP

    @property
    def scope(self) -> Literal["rows", "table"]:
        """``rows`` when each row passes or fails on its own (so validating changed rows is enough)."""
        return "table" if self.type == RELATIONSHIP or _TABLE_SCOPE.match(self.type) else "rows"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this expectation reads (those of its row condition included)."""
        found: list[str] = []
        for key in ("column", "column_A", "column_B"):
            if isinstance(self.kwargs.get(key), str):
                found.append(self.kwargs[key])
        for key in ("column_list",):
            found.extend(self.kwargs.get(key) or [])
        found.extend(condition_columns(self.kwargs.get("row_condition")))
        return tuple(dict.fromkeys(found))

    @property
    def target(self) -> TableRef | None:
        """The table a relationship points to."""
        return TableRef.from_key_path(self.kwargs["to"].split("/")) if self.type == RELATIONSHIP else None

    def describe(self) -> str:
        """The expectation in words, for the Dagster UI."""
        if self.description:
            return self.description
        kw = self.kwargs
        column = kw.get("column") or ", ".join(kw.get("column_list") or [])
        when = f" where {condition_text(kw['row_condition'])}" if kw.get("row_condition") else ""
        words = {
            "expect_column_values_to_not_be_null": f"{column} is never null",
            "expect_column_values_to_be_unique": f"{column} is unique",
            "expect_compound_columns_to_be_unique": f"({column}) is unique",
            "expect_column_values_to_be_in_set": f"{column} is one of {kw.get('value_set')}",
            "expect_column_values_to_be_between": (
                f"{column} is between {kw.get('min_value')} and {kw.get('max_value')}"
            ),
            "expect_column_values_to_match_regex": f"{column} matches {kw.get('regex')}",
            "expect_table_row_count_to_be_between": (
                f"the table has between {kw.get('min_value')} and {kw.get('max_value')} rows"
            ),
            RELATIONSHIP: f"every {column} is a {kw.get('field')} of {kw.get('to')}",
        }.get(self.type, f"{self.type} {json.dumps(dict(kw), default=str)}")
        return words + when

    def to_gx_configuration(self) -> dict[str, Any]:
        """The expectation as GX's own JSON shape (``type``, ``kwargs``, ``meta``, ``severity``)."""
        return {
            "type": self.type,
            "kwargs": dict(self.kwargs),
            "meta": {**self.meta, "check_name": self.name, "kpi_lake_severity": self.severity},
            "severity": GX_SEVERITY[self.severity],
        }


@dataclass(frozen=True)
class Lookup:
    """Columns joined from another table before validation, so an expectation can depend on them (a fact's
    ``actual`` is a percentage when its KPI's ``unit`` in dim_kpi is %)."""

    table: TableRef
    on: tuple[str, ...]
    columns: Mapping[str, str]  # column in ``table`` -> name in the validated frame


@dataclass(frozen=True)
class NativeRule:
    """Settings of a Dagster-native check (freshness, schema drift, row-count change)."""

    severity: Severity
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A table's expectation suite, as read from its file."""

    ref: TableRef
    file: str  # path below the expectations folder, for messages and the UI
    description: str
    columns: Mapping[str, str]
    sample_columns: tuple[str, ...]
    expectations: tuple[Expectation, ...]
    lookups: tuple[Lookup, ...] = ()
    native: Mapping[str, NativeRule] = field(default_factory=dict)
    #: Validate only the rows that changed since the last passing validation when the table has at least
    #: this many rows (None: always the whole table).
    changed_slice_min_rows: int | None = 1_000_000
    content_hash: str = ""

    @property
    def name(self) -> str:
        return ".".join(self.ref.key_path)

    @property
    def default_severity(self) -> Severity:
        return default_severity(self.ref)

    @property
    def gx_expectations(self) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expectations if e.is_gx)

    @property
    def relationships(self) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expectations if not e.is_gx)

    @property
    def check_names(self) -> tuple[str, ...]:
        return (*(n for n in NATIVE_CHECKS if n in self.native), *(e.name for e in self.expectations))

    @property
    def validated_columns(self) -> tuple[str, ...]:
        """What GX needs to see: the columns expectations read, and the sample columns."""
        wanted = [c for e in self.gx_expectations for c in e.columns]
        return tuple(dict.fromkeys([*self.sample_columns, *wanted]))

    @property
    def depends_on(self) -> tuple[TableRef, ...]:
        """Other tables this suite reads: lookups and relationship targets."""
        refs = [lookup.table for lookup in self.lookups] + [e.target for e in self.relationships if e.target]
        return tuple(dict.fromkeys(r for r in refs if r != self.ref))

    def to_gx_suite(self, expectations: Sequence[Expectation] | None = None, *, name: str | None = None):
        """A GX ``ExpectationSuite`` of this suite's GX expectations (or the given subset). Imports GX."""
        from great_expectations.core.expectation_suite import ExpectationSuite
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        chosen = self.gx_expectations if expectations is None else expectations
        configurations = [ExpectationConfiguration(**e.to_gx_configuration()) for e in chosen]
        return ExpectationSuite(
            name=name or self.name,
            expectations=[c.to_domain_obj() for c in configurations],
            meta={"table": self.ref.path, "suite_file": self.file, "notes": self.description},
        )


def default_severity(ref: TableRef) -> Severity:
    """Gold is what councillors read: its expectations block publication unless a suite says otherwise."""
    return "error" if ref.layer == "gold" else "warn"


def load_suites(root: Path) -> list[Suite]:
    """Every ``*.yml`` / ``*.yaml`` / ``*.json`` suite below ``root`` (``README.md`` and the like are not read).

    Raises :class:`SuiteError` listing every problem in every file, so one run shows them all.
    """
    suites, problems = [], []
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml", ".json") and p.is_file())
    for path in files:
        try:
            suites.append(load_suite(path, root))
        except SuiteError as error:
            problems.append(str(error))
    tables = [s.ref for s in suites]
    for ref in sorted({r for r in tables if tables.count(r) > 1}):
        problems.append(
            f"{ref}: more than one suite file ({', '.join(s.file for s in suites if s.ref == ref)})"
        )
    if problems:
        raise SuiteError("expectation suites with problems:\n  " + "\n  ".join(problems))
    return suites


def load_suite(path: Path, root: Path | None = None) -> Suite:
    """Read one suite file. The file must live at ``<layer>/<source>/<table>.<ext>`` matching its ``table``."""
    shown = path.relative_to(root).as_posix() if root else path.name
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise SuiteError(f"{shown}: not valid {path.suffix.lstrip('.')}: {error}") from error
    return parse_suite(raw, shown, content_hash=hashlib.sha256(text.encode()).hexdigest()[:16])


def parse_suite(raw: Any, shown: str, *, content_hash: str = "") -> Suite:
    """Turn a suite file's content into a :class:`Suite`, or raise :class:`SuiteError` naming every problem."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise SuiteError(f"{shown}: expected a mapping with table, columns and expectations")
    unknown = set(raw) - {
        "table",
        "description",
        "columns",
        "sample_columns",
        "expectations",
        "lookups",
        "severity",
        *NATIVE_CHECKS,
        "changed_slice",
    }
    if unknown:
        problems.append(f"unknown key(s) {', '.join(sorted(unknown))}")
    try:
        ref = TableRef.from_key_path(str(raw.get("table", "")).split("/"))
    except ValueError as error:
        raise SuiteError(f"{shown}: table must be <layer>/<source>/<table>: {error}") from error
    expected_file = f"{ref.path}."
    if "/" in shown and not shown.startswith(expected_file):
        problems.append(f"the file for {ref} belongs at {ref.path}.yml")
    suite_severity = raw.get("severity", default_severity(ref))
    if suite_severity not in SEVERITIES:
        problems.append(f"severity must be one of {SEVERITIES}, not {suite_severity!r}")
        suite_severity = default_severity(ref)

    columns = raw.get("columns") or {}
    if not isinstance(columns, Mapping):
        problems.append("columns must map each column to its type")
        columns = {}
    for column, dtype in columns.items():
        if str(dtype) not in TYPE_FAMILIES:
            problems.append(f"column {column}: type {dtype!r} is not one of {', '.join(TYPE_FAMILIES)}")
    sample_columns = tuple(raw.get("sample_columns") or ())
    for column in sample_columns:
        if columns and column not in columns:
            problems.append(f"sample column {column} is not a declared column")

    lookups = []
    for i, item in enumerate(raw.get("lookups") or []):
        try:
            lookups.append(
                Lookup(
                    table=TableRef.from_key_path(str(item["table"]).split("/")),
                    on=tuple([item["join_on"]] if isinstance(item["join_on"], str) else item["join_on"]),
                    columns=dict(item["columns"]),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            problems.append(f"lookup {i + 1}: needs table, join_on and columns ({error})")
    lookup_columns = {alias for lookup in lookups for alias in lookup.columns.values()}

    native: dict[str, NativeRule] = {}
    defaults = _native_defaults(ref, suite_severity)
    for check in NATIVE_CHECKS:
        setting = raw.get(check, defaults[check])
        if setting is None or setting is False:
            continue
        setting = dict(defaults[check] or {}) | (dict(setting) if isinstance(setting, Mapping) else {})
        severity = setting.pop("severity", suite_severity)
        if severity not in SEVERITIES:
            problems.append(f"{check}: severity must be one of {SEVERITIES}, not {severity!r}")
            severity = suite_severity
        native[check] = NativeRule(severity=severity, params=setting)
    slice_setting = raw.get("changed_slice", {"min_rows": 1_000_000})
    slice_min_rows = (
        None if slice_setting in (None, False) else int(dict(slice_setting).get("min_rows", 1_000_000))
    )

    expectations: list[Expectation] = []
    items = raw.get("expectations")
    if not isinstance(items, list) or not items:
        problems.append("expectations must be a non-empty list")
        items = []
    for i, item in enumerate(items):
        where = f"expectation {i + 1}"
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
            problems.append(
                f"{where}: needs a type (a GX expectation such as expect_column_values_to_not_be_null)"
            )
            continue
        extra = set(item) - {"type", "kwargs", "severity", "name", "description", "meta"}
        if extra:
            problems.append(f"{where} ({item['type']}): unknown key(s) {', '.join(sorted(extra))}")
        kwargs = dict(item.get("kwargs") or {})
        kind = item["type"]
        if kind != RELATIONSHIP and not kind.startswith("expect_"):
            problems.append(
                f"{where}: type {kind!r} is neither a GX expectation (expect_…) nor {RELATIONSHIP}"
            )
            continue
        if kind == RELATIONSHIP:
            missing = [k for k in ("column", "to", "field") if k not in kwargs]
            if missing:
                problems.append(f"{where} (relationship): kwargs need {', '.join(missing)}")
                continue
            try:
                TableRef.from_key_path(str(kwargs["to"]).split("/"))
            except ValueError as error:
                problems.append(f"{where} (relationship): to must be <layer>/<source>/<table>: {error}")
                continue
        severity = item.get("severity", suite_severity)
        if severity not in SEVERITIES:
            problems.append(f"{where}: severity must be one of {SEVERITIES}, not {severity!r}")
            severity = suite_severity
        expectation = Expectation(
            name=str(item.get("name") or ""),
            type=kind,
            kwargs=kwargs,
            severity=severity,
            description=str(item.get("description") or ""),
            meta=dict(item.get("meta") or {}),
        )
        name = _check_name(expectation.name or _default_name(expectation), kind)
        expectation = Expectation(
            name=name,
            type=kind,
            kwargs=kwargs,
            severity=severity,
            description=expectation.description,
            meta=expectation.meta,
        )
        if not CHECK_NAME.match(name) or len(name) > 80:
            problems.append(f"{where}: name {name!r} must be lower-case letters, digits and _ (80 at most)")
        known = set(columns) | lookup_columns
        unknown_columns = [c for c in expectation.columns if columns and c not in known]
        if unknown_columns:
            problems.append(f"{where} ({name}): column(s) {', '.join(unknown_columns)} are not declared")
        expectations.append(expectation)
    names = [e.name for e in expectations] + list(native)
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"check name {name} is used twice: give one of them a name")
    if problems:
        raise SuiteError(f"{shown}: " + "; ".join(problems))
    return Suite(
        ref=ref,
        file=shown,
        description=str(raw.get("description") or "").strip(),
        columns={str(k): str(v) for k, v in columns.items()},
        sample_columns=sample_columns,
        expectations=tuple(expectations),
        lookups=tuple(lookups),
        native=native,
        changed_slice_min_rows=slice_min_rows,
        content_hash=content_hash,
    )


def condition_columns(condition: Any) -> list[str]:
    """Columns named in a GX row condition (its JSON form: ``{type: comparison, column: {name: unit}, …}``)."""
    if isinstance(condition, Mapping):
        names = [
            condition[key]["name"]
            for key in ("column", "other_column")
            if isinstance(condition.get(key), Mapping) and "name" in condition[key]
        ]
        for inner in condition.get("conditions") or []:
            names.extend(condition_columns(inner))
        return names
    return []


def condition_text(condition: Any) -> str:
    """A GX row condition in words: ``unit == %``, ``actual is null``, ``a == 1 and b > 2``."""
    if not isinstance(condition, Mapping):
        return str(condition)
    kind = condition.get("type")
    if kind in ("and", "or"):
        return f" {kind} ".join(condition_text(c) for c in condition.get("conditions") or [])
    column = (condition.get("column") or {}).get("name", "?")
    if kind == "nullity":
        return f"{column} is {'null' if condition.get('is_null', True) else 'not null'}"
    if kind == "column_comparison":
        return f"{column} {condition.get('operator')} {(condition.get('other_column') or {}).get('name')}"
    return f"{column} {condition.get('operator')} {condition.get('parameter')}"


def dtype_matches(declared: str, actual: str) -> bool:
    """Whether a polars dtype (as ``str(dtype)``: ``Int64``, ``Datetime(time_unit='us', ...)``) is of the
    declared family."""
    families = TYPE_FAMILIES.get(declared, ())
    return not families or actual.split("(", 1)[0] in families


def suites_by_table(suites: Iterable[Suite]) -> dict[TableRef, Suite]:
    return {suite.ref: suite for suite in suites}


def _native_defaults(ref: TableRef, severity: Severity) -> dict[str, dict[str, Any] | None]:
    return {
        # Bronze tables change when files arrive, whenever that is; silver and gold are rebuilt every night.
        "freshness": None if ref.layer == "bronze" else {"max_age_hours": 26, "severity": "warn"},
        "schema_drift": {"extra_columns": "allow" if ref.layer == "gold" else "fail", "severity": severity},
        "row_count_change": {"max_change_pct": 50, "min_previous_rows": 20, "severity": severity},
    }


def _check_name(name: str, kind: str) -> str:
    """Check names carry their engine (``gx_…`` for Great Expectations, ``rel_…`` for relationships): they
    read well in the UI, and never collide with the mart's own column tests (``<column>_not_null``)."""
    prefix = "rel_" if kind == RELATIONSHIP else "gx_"
    return name if name.startswith(prefix) else prefix + name


def _default_name(expectation: Expectation) -> str:
    short = next((s for prefix, s in _SHORT_TYPE if expectation.type == prefix), None)
    if expectation.type == RELATIONSHIP:
        target = expectation.target
        return f"{expectation.kwargs['column']}_in_{target.table if target else 'parent'}"
    if short is None:
        short = re.sub(
            r"^expect_(column_values_to_|column_|table_|compound_columns_to_)?", "", expectation.type
        )
        short = short.replace("to_be_", "").replace("_to_", "_")
    parts = (
        [*expectation.columns[:3], short]
        if expectation.type != "expect_table_row_count_to_be_between"
        else [short]
    )
    if expectation.kwargs.get("row_condition"):
        parts.append("conditional")
    return "_".join(parts).lower().strip("_")


#: Safe YAML (no Python objects), with the C loader when PyYAML has it.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
