"""What is wrong with a model: a light module (no sqlglot), so that loading cached models imports no parser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a model: the file, where in it (when known) and what was expected."""

    path: str
    message: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f", line {self.line}" + (f", col {self.col}" if self.col is not None else "")
        return f"{where}: {self.message}"


class SqlModelError(Exception):
    """Models that cannot be loaded or built. ``problems`` lists each one with its file and line."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            text = f"{len(self.problems)} problems in SQL models:\n" + "\n".join(
                f"- {p}" for p in self.problems
            )
        super().__init__(text)
