"""Read a SQL model's text: turn ``ref()``/``source()``/``{{ this }}`` into table names on the token stream, parse
the result with sqlglot and list the lake tables the query reads. Positions always refer to the file as written.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from kpi_lake.sql_models.problems import Problem, SqlModelError
from kpi_lake.tables import LAYERS, TableRef

#: Models are written in DuckDB's dialect (PostgreSQL-like, with ``qualify``, ``::`` casts, ``median``, …);
#: sqlglot parses it and writes it back out for each engine.
DIALECT = "duckdb"
#: The name an incremental model uses for its own table as it stands before this run.
THIS = "this"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOKEN_POSITION = re.compile(r"from (\d+):(\d+)")
_DIALECT = Dialect.get_or_raise(DIALECT)


# ---- problems: kpi_lake/sql_models/problems.py (Problem, SqlModelError, imported above) ----------------


# ---- positions -------------------------------------------------------------------------------------------


def _line_starts(text: str) -> list[int]:
    return [0, *(i + 1 for i, char in enumerate(text) if char == "\n")]


def first_mention(sql: str, name: str) -> tuple[int, int] | None:
    """Line and column of the first token spelled ``name`` (case-insensitive), outside strings and comments."""
    try:
        tokens = sqlglot.tokenize(sql, read=DIALECT)
    except TokenError:
        return None
    for token in tokens:
        if token.token_type is not TokenType.STRING and token.text.lower() == name.lower():
            return line_col_of(sql, token.start)
    return None


def line_col_of(text: str, offset: int) -> tuple[int, int]:
    starts = _line_starts(text)
    line = bisect.bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


# ---- ref(), source() and {{ this }} ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rewritten:
    """The model's tokens with every ``ref``/``source``/``{{ this }}`` replaced by the tokens of a table name.

    The new tokens keep the position of the call they replace, so parser errors and node positions are
    always positions in the file as written.
    """

    sql: str
    tokens: list[Token]
    problems: tuple[Problem, ...] = ()


def table_sql(ref: TableRef) -> str:
    """``layer.source.table`` as SQL (quoted only where a part needs it)."""
    return exp.table_(ref.table, ref.source, ref.layer).sql(dialect=DIALECT)


def rewrite_macros(sql: str, path: str, resolve_ref: Callable[[str], TableRef | None]) -> Rewritten:
    """Replace ``ref('model')``, ``source('layer', 'source', 'table')`` and ``{{ this }}`` with table names.

    Works on sqlglot's tokens, not on the text, so the same words inside string literals, quoted names or
    comments are left alone.
    """
    try:
        tokens = sqlglot.tokenize(sql, read=DIALECT)
    except TokenError as error:
        return Rewritten(sql, [], (_token_problem(path, error),))
    problems: list[Problem] = []
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        word = token.text.lower()
        after_dot = i > 0 and tokens[i - 1].token_type is TokenType.DOT
        if (
            word in ("ref", "source")
            and token.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)
            and not after_dot
            and _is(tokens, i + 1, TokenType.L_PAREN)
        ):
            close, args = _call_arguments(tokens, i + 2)
            line, col = line_col_of(sql, token.start)
            target, problem = _macro_target(word, args, resolve_ref)
            if problem:
                problems.append(Problem(path, problem, line, col))
            else:
                out += _table_tokens(target, tokens[i : close + 1])  # type: ignore[arg-type]
            i = close + 1
            continue
        if (
            token.token_type is TokenType.L_BRACE
            and _is(tokens, i + 1, TokenType.L_BRACE)
            and i + 4 < len(tokens)
            and tokens[i + 2].text.lower() == THIS
            and _is(tokens, i + 3, TokenType.R_BRACE)
            and _is(tokens, i + 4, TokenType.R_BRACE)
        ):
            out.append(_positioned(Token(TokenType.VAR, THIS), tokens[i : i + 5]))
            i += 5
            continue
        out.append(token)
        i += 1
    return Rewritten(sql, out, tuple(problems))


def _macro_target(
    word: str, args: list[str] | None, resolve_ref: Callable[[str], TableRef | None]
) -> tuple[TableRef | None, str | None]:
    if args is None:
        return None, f"{word}() takes names in quotes, e.g. {_example(word)}"
    if word == "ref":
        if len(args) != 1:
            return None, f"ref() takes one model name, e.g. ref('dim_kpi'), not {len(args)} arguments"
        target = resolve_ref(args[0])
        if target is None:
            return None, f"ref('{args[0]}'): there is no model named {args[0]!r}"
        return target, None
    if len(args) != 3:
        return None, (
            "source() takes layer, source and table, e.g. source('silver', 'spar_net', 'kpi_values'); "
            f"got {len(args)} argument(s)"
        )
    layer, source, table = args
    if layer not in LAYERS:
        return None, f"source(): the layer must be one of {', '.join(LAYERS)}, not {layer!r}"
    try:
        return TableRef(layer, source, table), None  # type: ignore[arg-type]
    except ValueError as error:
        return None, f"source(): {error}"


def _table_tokens(ref: TableRef, replaced: list[Token]) -> list[Token]:
    return [_positioned(token, replaced) for token in sqlglot.tokenize(table_sql(ref), read=DIALECT)]


def _positioned(token: Token, replaced: list[Token]) -> Token:
    """``token`` placed where the ``replaced`` tokens were, carrying their comments."""
    first, last = replaced[0], replaced[-1]
    comments = [comment for old in replaced for comment in old.comments]
    return Token(token.token_type, token.text, first.line, first.col, first.start, last.end, comments)


def _example(word: str) -> str:
    return "ref('dim_kpi')" if word == "ref" else "source('silver', 'spar_net', 'kpi_values')"


def _is(tokens: list[Token], index: int, kind: TokenType) -> bool:
    return index < len(tokens) and tokens[index].token_type is kind


def _call_arguments(tokens: list[Token], index: int) -> tuple[int, list[str] | None]:
    """From just after ``(``: the index of the closing ``)`` and the string arguments (None unless every
    argument is a plain string)."""
    args: list[str] = []
    plain = True
    depth = 0
    expect_string = True
    while index < len(tokens):
        token = tokens[index]
        if token.token_type is TokenType.L_PAREN:
            depth += 1
            plain = False
        elif token.token_type is TokenType.R_PAREN:
            if depth == 0:
                return index, (args if plain and not expect_string else None)
            depth -= 1
        elif token.token_type is TokenType.STRING and expect_string and depth == 0:
            args.append(token.text)
            expect_string = False
        elif token.token_type is TokenType.COMMA and not expect_string and depth == 0:
            expect_string = True
        else:
            plain = False
        index += 1
    return len(tokens) - 1, None


def _token_problem(path: str, error: TokenError) -> Problem:
    cause = str(error.__cause__ or "")
    match = _TOKEN_POSITION.search(cause)
    line, col = (int(match[1]), int(match[2])) if match else (None, None)
    reason = f"unterminated quote ({cause})" if cause.startswith("Missing") else (cause or str(error))
    return Problem(path, f"SQL syntax error: {reason}", line, col)


# ---- parsing and the tables a query reads ---------------------------------------------------------------


def parse_query(rewritten: Rewritten, path: str) -> exp.Query:
    """Parse the rewritten tokens as exactly one query (a SELECT, perhaps with CTEs, UNION ALL …)."""
    try:
        parsed = _DIALECT.parser().parse(rewritten.tokens, rewritten.sql)
    except ParseError as error:
        raise SqlModelError(_parse_problem(path, error)) from None
    statements = [s for s in parsed if s is not None]
    if len(statements) != 1:
        raise SqlModelError(
            Problem(path, f"a model is one SELECT statement; found {len(statements)} statements")
        )
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise SqlModelError(
            Problem(
                path,
                f"a model is a SELECT (CTEs welcome), not {query.key.upper()}: the engine writes the table",
            )
        )
    return query


def _parse_problem(path: str, error: ParseError) -> Problem:
    detail = error.errors[0] if error.errors else {}
    description = detail.get("description") or str(error)
    highlight = (detail.get("highlight") or "").strip()
    near = f" (near {highlight!r})" if highlight else ""
    return Problem(path, f"SQL syntax error: {description}{near}", detail.get("line"), detail.get("col"))


@dataclass(frozen=True)
class TableUse:
    """A table a query reads: a lake table, the model's own table (``this``) or something not allowed."""

    node: exp.Table
    ref: TableRef | None = None
    is_this: bool = False
    problem: str | None = None


def cte_names(query: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}


def table_uses(query: exp.Expression, model_names: set[str] | frozenset[str] = frozenset()) -> list[TableUse]:
    """Every table node of the query, classified. CTE names are not tables; unqualified names other than
    ``this`` are mistakes (a model reads ``ref()``, ``source()`` or ``layer.source.table``)."""
    ctes = cte_names(query)
    uses: list[TableUse] = []
    for node in query.find_all(exp.Table):
        if not isinstance(node.this, exp.Identifier):
            uses.append(
                TableUse(
                    node,
                    problem=f"reads from {node.this.sql(dialect=DIALECT)!r}: models read lake tables only "
                    "(ref(), source() or layer.source.table)",
                )
            )
            continue
        name, db, catalog = node.name, node.db, node.catalog
        if not db and not catalog:
            if name.lower() in ctes:
                continue
            if name.lower() == THIS:
                uses.append(TableUse(node, is_this=True))
                continue
            hint = f"; did you mean ref('{name}')?" if name in model_names else ""
            uses.append(
                TableUse(
                    node,
                    problem=f"unknown table {name!r}: name it ref('model'), source('layer', 'source', 'table') "
                    f"or layer.source.table{hint}",
                )
            )
        elif not catalog:
            uses.append(TableUse(node, problem=f"table {db}.{name} needs three parts: layer.source.table"))
        elif catalog not in LAYERS:
            uses.append(
                TableUse(
                    node, problem=f"table {catalog}.{db}.{name}: the layer must be one of {', '.join(LAYERS)}"
                )
            )
        else:
            uses.append(TableUse(node, ref=TableRef(catalog, db, name)))  # type: ignore[arg-type]
    return uses


def node_position(node: exp.Expression, sql: str) -> tuple[int | None, int | None]:
    """Where a parsed node starts in the file (from its identifier's token position)."""
    identifier = node.this if isinstance(node, exp.Table) else node
    meta = getattr(identifier, "meta", None) or {}
    if "start" not in meta:
        return None, None
    return line_col_of(sql, meta["start"])


def parse_table_name(text: str, path: str, resolve_ref: Callable[[str], TableRef | None]) -> TableRef:
    """A table named in YAML (``ref('dim_kpi')``, ``source(...)`` or ``layer.source.table``) as a TableRef."""
    rewritten = rewrite_macros(f"select * from {text}", path, resolve_ref)
    if rewritten.problems:
        raise SqlModelError(Problem(path, rewritten.problems[0].message))
    try:
        node = parse_query(rewritten, path).args["from_"].this
    except (SqlModelError, KeyError, AttributeError):
        node = None
    if not isinstance(node, exp.Table) or node.catalog not in LAYERS or not node.db or node.args.get("alias"):
        raise SqlModelError(
            Problem(
                path,
                f"{text!r} is not a table: use ref('model'), source('layer', 'source', 'table') or "
                "layer.source.table",
            )
        )
    return TableRef(node.catalog, node.db, node.name)  # type: ignore[arg-type]


def leading_comment(sql: str) -> str | None:
    """The comment a model starts with (``--`` lines or one ``/* */`` block), as its description."""
    text = sql.lstrip()
    if text.startswith("/*"):
        end = text.find("*/")
        body = text[2:end] if end > 0 else ""
        lines = [line.strip().lstrip("*").strip() for line in body.splitlines()]
    else:
        lines = []
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped.startswith("--"):
                break
            lines.append(stripped[2:].strip())
    description = " ".join(line for line in lines if line).strip()
    return description or None


def is_model_name(name: str) -> bool:
    """Model, source and layer names are lower-case snake_case: they are folder names and SQL identifiers."""
    return bool(_NAME.match(name))
