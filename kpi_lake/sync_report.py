"""What ``kpi-lake sync`` shows: progress while the run goes, then a summary of what each table did.

Progress is a bar that redraws itself on a terminal, and one plain line per finished step elsewhere (CI, a
log file). The summary lists tables in flow order (bronze, silver, gold, then the rest), says what this run did
to each (new files, rows changed, rebuilt or unchanged, rows quarantined or withheld), hides empty side tables
(quarantine, rejected, bad files, withheld) unless asked, and ends with the total time and the slowest steps.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

LAYER_ORDER = {"bronze": 0, "silver": 1, "gold": 2}
SIDE_TABLE_SUFFIXES = ("_quarantine", "_rejected", "_bad_files", "_withheld")
STEP_DONE = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}


def step_label(step_key: str) -> str:
    """``silver__spar_net__kpi_values`` → ``silver/spar_net/kpi_values``."""
    return step_key.replace("__", "/")


@dataclass
class Progress:
    """Counts steps as they finish and shows it: a redrawn bar on a terminal, plain lines otherwise."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    interactive: bool | None = None
    total: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    step_started: dict[str, float] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interactive is None:
            self.interactive = self.stream.isatty()

    def plan(self, step_keys: list[str]) -> None:
        self.total = len(step_keys)
        self._write(f"kpi-lake sync: {self.total} steps to run", final=True)

    def event(self, event: Any) -> None:
        kind, step = event.event_type_value, event.step_key
        if step is None:
            return
        if kind == "STEP_START":
            self.step_started[step] = time.monotonic()
            if self.interactive:
                self._write(self._bar(step_label(step)))
        elif kind in STEP_DONE:
            self.done += 1
            seconds = time.monotonic() - self.step_started.get(step, time.monotonic())
            self.durations[step] = seconds
            line = f"{step_label(step)} {STEP_DONE[kind]} ({seconds:.1f}s)"
            if self.interactive:
                self._write(self._bar(line), final=kind != "STEP_SUCCESS")
            else:
                elapsed = time.monotonic() - self.started
                self._write(
                    f"[{self.done:>{len(str(self.total))}}/{self.total} {elapsed:6.1f}s] {line}", final=True
                )

    def finish(self) -> None:
        if self.interactive:
            self._write("", final=True)

    def slowest(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.durations.items(), key=lambda item: -item[1])[:n]

    def _bar(self, text: str) -> str:
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        elapsed = time.monotonic() - self.started
        head = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:5.0f}s "
        room = max(10, shutil.get_terminal_size((100, 20)).columns - len(head) - 1)
        return head + (text if len(text) <= room else "…" + text[-room + 1 :])

    def _write(self, text: str, final: bool = False) -> None:
        if self.interactive:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


@dataclass(frozen=True)
class TableLine:
    name: str
    rows: int | None
    note: str
    side_table: bool
    empty: bool


def table_lines(materializations: list[Any]) -> list[TableLine]:
    """One line per table materialised, in flow order, saying what this run did to it."""
    lines = []
    for event in materializations:
        materialization = event.materialization if hasattr(event, "materialization") else event
        name = "/".join(materialization.asset_key.path)
        metadata = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
        rows = metadata.get("dagster/row_count")
        rows = None if rows is None else int(rows)
        lines.append(
            TableLine(
                name=name,
                rows=rows,
                note=_what_happened(metadata),
                side_table=name.endswith(SIDE_TABLE_SUFFIXES),
                empty=not rows,
            )
        )
    return sorted(lines, key=lambda line: (LAYER_ORDER.get(line.name.split("/", 1)[0], 3), line.name))


def _what_happened(metadata: dict[str, Any]) -> str:
    operation = metadata.get("delta_operation")
    parts: list[str] = []
    if metadata.get("files_loaded") is not None:
        files = int(metadata["files_loaded"])
        if files:
            parts.append(
                f"{files} new file{'s' if files != 1 else ''}, {int(metadata.get('rows_written') or 0):,} rows"
            )
        else:
            parts.append("no new files")
        if metadata.get("bad_files"):
            parts.append(f"{int(metadata['bad_files'])} bad file(s) set aside")
    elif metadata.get("rows_written") is not None:
        written = int(metadata["rows_written"])
        parts.append(f"{written:,} rows changed" if written else "no changes at source")
    elif operation == "unchanged":
        parts.append("unchanged (inputs and code as last built)")
    elif operation:
        parts.append(f"rebuilt ({operation})")
    for key, words in (
        ("quarantined_rows", "quarantined"),
        ("rows_rejected", "rejected"),
        ("rows_withheld", "withheld"),
        ("rows_deleted_in_source", "deleted at source"),
    ):
        if metadata.get(key):
            parts.append(f"{int(metadata[key]):,} {words}")
    if metadata.get("schema_drift"):
        parts.append(f"schema drift: {metadata['schema_drift']}")
    if metadata.get("unmatched_files"):
        parts.append("files matching no table (see warnings)")
    return "; ".join(parts)


def print_tables(lines: list[TableLine], verbose: bool, out: TextIO = sys.stdout) -> None:
    shown = [line for line in lines if verbose or not (line.side_table and line.empty)]
    hidden = len(lines) - len(shown)
    width = max((len(line.name) for line in shown), default=10)
    layer = None
    print(f"{'table'.ljust(width)}  {'rows':>10}  this run", file=out)
    for line in shown:
        this_layer = line.name.split("/", 1)[0]
        if layer is not None and this_layer != layer:
            print("", file=out)
        layer = this_layer
        rows = "-" if line.rows is None else f"{line.rows:,}"
        print(f"{line.name.ljust(width)}  {rows:>10}  {line.note}", file=out)
    total = sum(line.rows or 0 for line in lines)
    hidden_note = (
        f" ({hidden} empty quarantine/rejected/withheld tables not shown: --verbose)" if hidden else ""
    )
    print(f"{len(lines)} tables, {total:,} rows{hidden_note}.", file=out)
