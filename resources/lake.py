"""The lake: the one resource through which every Delta table is read and written, locally or on Azure.

Every write is a single Delta commit, so a table is never half-written: a failed write leaves the previous
version in place. Tables stay at reader version 1 / writer version 2 (naive timestamps, which would need
the ``timestampNtz`` feature, are stored as UTC), so Power BI, Fabric and older readers can open them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import polars as pl
from deltalake import CommitProperties, DeltaTable

from kpi_lake.frames import delta_compatible
from kpi_lake.storage import is_remote, join_uri, local_path, parse_azure_uri, redact
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage

Frame = pl.DataFrame | pl.LazyFrame
#: The protocol a table keeps unless a feature is chosen on purpose (readable by Power BI's Delta connector).
PROTOCOL = (1, 2)


class LakeWriteError(RuntimeError):
    """A write that did not happen. The table is as it was before the write."""


@dataclass(frozen=True)
class TableState:
    """What a table holds after a write: reported as Dagster metadata on every materialisation."""

    ref: TableRef
    uri: str
    version: int
    row_count: int
    schema: dict[str, str]
    operation: str = "read"
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "dagster/row_count": self.row_count,
            "dagster/uri": dg.MetadataValue.path(redact(self.uri)),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(name, dtype) for name, dtype in self.schema.items()]
            ),
            "dagster/table_name": self.ref.path,
            "delta_version": self.version,
            "delta_operation": self.operation,
        }
        for name, value in self.metrics.items():
            if isinstance(value, int | float | str | bool):
                metadata[f"delta_{name}"] = value
        return metadata


class DeltaLake(dg.ConfigurableResource):
    """Delta tables under ``root`` (a local folder or ``az://`` / ``abfss://`` URI), one per asset key."""

    root: str = "lake"
    azure: AzureStorage

    # ---- where tables are -------------------------------------------------------------------------------
    def uri(self, ref: TableRef) -> str:
        return join_uri(self.root, ref.path)

    def storage_options(self) -> dict[str, str] | None:
        return self.azure.delta_storage_options(self.root) if is_remote(self.root) else None

    def ensure_root(self) -> None:
        """Create the lake's folder, or its Azure container, when it does not exist yet."""
        if not is_remote(self.root):
            local_path(self.root).mkdir(parents=True, exist_ok=True)
            return
        container = parse_azure_uri(self.root).container
        fs = self.azure.filesystem(self.root)
        if not fs.exists(container):
            fs.mkdir(container)

    # ---- reading ------------------------------------------------------------------------------------------
    def exists(self, ref: TableRef) -> bool:
        return DeltaTable.is_deltatable(self.uri(ref), storage_options=self.storage_options())

    def delta_table(self, ref: TableRef, version: int | None = None) -> DeltaTable:
        return DeltaTable(self.uri(ref), version=version, storage_options=self.storage_options())

    def scan(self, ref: TableRef, *, version: int | None = None) -> pl.LazyFrame:
        """A lazy scan of the table (nothing is read until it is collected)."""
        if not self.exists(ref):
            raise LakeWriteError(
                f"table {ref} does not exist yet at {redact(self.uri(ref))}: materialise it first"
            )
        return pl.scan_delta(self.uri(ref), version=version, storage_options=self.storage_options())

    def state(
        self, ref: TableRef, operation: str = "read", metrics: dict[str, Any] | None = None
    ) -> TableState:
        """Version, row count (from the Delta log, no data read) and schema of a table."""
        table = self.delta_table(ref)
        actions = pl.DataFrame(table.get_add_actions(flatten=True))
        rows = int(actions["num_records"].sum()) if actions.height else 0
        schema = pl.scan_delta(table).collect_schema()
        protocol = table.protocol()
        if (protocol.min_reader_version, protocol.min_writer_version) != PROTOCOL:
            raise LakeWriteError(
                f"table {ref} is at Delta protocol {protocol.min_reader_version}/{protocol.min_writer_version}, "
                f"expected {PROTOCOL[0]}/{PROTOCOL[1]} so that BI tools can read it"
            )
        return TableState(
            ref=ref,
            uri=self.uri(ref),
            version=table.version(),
            row_count=rows,
            schema={name: str(dtype) for name, dtype in schema.items()},
            operation=operation,
            metrics=metrics or {},
        )

    # ---- writing ------------------------------------------------------------------------------------------
    def overwrite(
        self,
        ref: TableRef,
        data: Frame,
        *,
        partition_by: list[str] | None = None,
        commit_metadata: dict[str, str] | None = None,
    ) -> TableState:
        """Replace the whole table (schema included) in one commit. ``commit_metadata`` is stored in the Delta
        log with the commit (keys prefixed ``kpi_lake.``): what the table was built from."""
        return self._write(
            ref,
            data,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=partition_by,
            commit_metadata=commit_metadata,
        )

    def version(self, ref: TableRef) -> int | None:
        """The table's current Delta version, or None when it does not exist (reads the log only)."""
        if not self.exists(ref):
            return None
        return self.delta_table(ref).version()

    def last_commit_metadata(self, ref: TableRef) -> dict[str, str]:
        """The ``kpi_lake.*`` metadata stored with the table's latest commit (empty if none or no table)."""
        if not self.exists(ref):
            return {}
        latest = self.delta_table(ref).history(1)
        return {k: v for k, v in (latest[0] if latest else {}).items() if k.startswith("kpi_lake.")}

    def append(self, ref: TableRef, data: Frame, *, partition_by: list[str] | None = None) -> TableState:
        """Add rows; new columns are added to the schema."""
        return self._write(ref, data, mode="append", schema_mode="merge", partition_by=partition_by)

    def replace_where(self, ref: TableRef, data: Frame, predicate: str) -> TableState:
        """Replace the rows matching ``predicate`` (one partition, one source file) with ``data``, atomically.

        Every row of ``data`` must match the predicate. On a table that does not exist yet, this creates it.
        """
        if not self.exists(ref):
            return self._write(ref, data, mode="append", schema_mode="merge")
        return self._write(ref, data, mode="overwrite", schema_mode="merge", predicate=predicate)

    def merge(
        self,
        ref: TableRef,
        data: Frame,
        keys: list[str],
        *,
        delete_missing: bool = False,
        only_if_changed: list[str] | None = None,
    ) -> TableState:
        """Upsert ``data`` on ``keys``: update matches, insert the rest (and with ``delete_missing``, delete
        target rows that ``data`` lacks). ``only_if_changed`` limits updates to rows where one of those columns
        differs, so a rerun with the same data rewrites nothing.
        """
        frame = delta_compatible(data).collect() if isinstance(data, pl.LazyFrame) else delta_compatible(data)
        duplicates = frame.group_by(keys).len().filter(pl.col("len") > 1)
        if duplicates.height:
            sample = duplicates.head(3).drop("len").to_dicts()
            raise LakeWriteError(
                f"merge into {ref}: {duplicates.height} keys appear more than once, e.g. {sample}"
            )
        if not self.exists(ref):
            return self._write(ref, frame, mode="append", schema_mode="merge")
        predicate = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
        changed = None
        if only_if_changed:
            changed = " OR ".join(_null_safe_differs(c) for c in only_if_changed)
        try:
            merger = self.delta_table(ref).merge(
                frame.to_arrow(),
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=CommitProperties(custom_metadata={"kpi_lake.operation": "merge"}),
            )
            merger = merger.when_matched_update_all(predicate=changed).when_not_matched_insert_all()
            if delete_missing:
                merger = merger.when_not_matched_by_source_delete()
            metrics = merger.execute()
        except Exception as exc:  # delta-rs raises several error types; the table is unchanged either way
            raise LakeWriteError(f"merge into {ref} at {redact(self.uri(ref))} failed: {exc}") from exc
        return self.state(ref, operation="merge", metrics=metrics)

    def _write(
        self,
        ref: TableRef,
        data: Frame,
        *,
        mode: Literal["append", "overwrite"],
        schema_mode: Literal["merge", "overwrite"],
        predicate: str | None = None,
        partition_by: list[str] | None = None,
        commit_metadata: dict[str, str] | None = None,
    ) -> TableState:
        options: dict[str, Any] = {"schema_mode": schema_mode}
        if commit_metadata:
            options["commit_properties"] = CommitProperties(
                custom_metadata={f"kpi_lake.{k}": str(v) for k, v in commit_metadata.items()}
            )
        if predicate:
            options["predicate"] = predicate
        if partition_by:
            options["partition_by"] = partition_by
        uri = self.uri(ref)
        if not is_remote(self.root):
            local_path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            prepared = delta_compatible(data)
            if isinstance(prepared, pl.LazyFrame):
                # Streaming: large sources are written without collecting them in memory first.
                prepared.sink_delta(
                    uri, mode=mode, storage_options=self.storage_options(), delta_write_options=options
                )
            else:
                prepared.write_delta(
                    uri, mode=mode, storage_options=self.storage_options(), delta_write_options=options
                )
        except Exception as exc:
            raise LakeWriteError(f"writing {ref} to {redact(uri)} ({mode}) failed: {exc}") from exc
        return self.state(ref, operation=mode if not predicate else "replace_where")


def _quote(column: str) -> str:
    return f"`{column}`"


def _null_safe_differs(column: str) -> str:
    t, s = f"t.{_quote(column)}", f"s.{_quote(column)}"
    return f"(({t} IS NULL) <> ({s} IS NULL) OR {t} <> {s})"
