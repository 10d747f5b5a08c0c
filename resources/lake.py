"""The lake: the one resource through which every Delta table is read and written, locally or on Azure.

Every write is a single Delta commit, so a table is never half-written: a failed write leaves the previous
version in place. Operations that fail because storage is briefly unreachable or overloaded (refused or reset
connections, timeouts, HTTP 429/5xx) are retried with exponential backoff; a write that did commit before its
reply was lost is not written again. Tables stay at reader version 1 / writer version 2 (naive timestamps,
which would need the ``timestampNtz`` feature, are stored as UTC), so Power BI, Fabric and older readers can
open them.
"""

from __future__ import annotations

import datetime as dt
import errno
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import dagster as dg
import polars as pl

from kpi_lake.frames import delta_compatible
from kpi_lake.raw_files import LOADED_AT
from kpi_lake.storage import is_remote, join_uri, local_path, parse_azure_uri, redact, write_atomically
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage

if TYPE_CHECKING:
    from deltalake import DeltaTable  # imported where a table is read or written: not when the code loads

Frame = pl.DataFrame | pl.LazyFrame
T = TypeVar("T")
#: The protocol a table keeps unless a feature is chosen on purpose (readable by Power BI's Delta connector).
PROTOCOL = (1, 2)
#: Commit metadata key that marks one logical write, so a retry can tell whether an attempt had committed.
WRITE_ID_KEY = "kpi_lake.write_id"
#: Commit metadata key naming the key columns a write left unique (it checked the table before writing, and what
#: it wrote cannot repeat a key): the next :meth:`DeltaLake.heal_duplicate_keys` of those keys reads only the log.
UNIQUE_KEYS_KEY = "kpi_lake.unique_keys"
#: Rows per Parquet row group in the lake's files (delta-rs writes 1M by default). A streamed read decodes a
#: row group at a time, and reading a slice of rows decodes every row group it touches: with 1M-row groups a
#: 5M-row bronze table took 2.5 GB to scan; 128k rows keep that to a few hundred MB.
ROW_GROUP_ROWS = 128 * 1024
#: Longest wait between two attempts, whatever the backoff says.
MAX_BACKOFF_SECONDS = 60.0

# What delta-rs / object_store / the Azure SDK say when storage is briefly unreachable or overloaded: worth
# another attempt. Anything else (403, 404, schema mismatch, a commit conflict, bad data) fails at once.
# "timeout" alone is not here: every object_store error prints its "retry_timeout" setting.
_TRANSIENT = re.compile(
    r"connection (?:refused|reset|aborted|closed)|broken pipe|tcp connect error|error sending request"
    r"|connection error|timed out|deadline has elapsed|temporarily unavailable|try again"
    r"|service unavailable|server ?busy|internal server error|bad gateway|gateway time-?out"
    r"|too many requests|operation could not be completed within the specified time"
    r"|os error (?:32|104|110|111|113)\b"
    r"|status(?: code)?:? ?(?:429|5\d\d)\b|\((?:429|5\d\d) [a-z]",
    re.IGNORECASE,
)
_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE}
_URL_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")


def is_transient_error(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) says storage was briefly unreachable or overloaded: refused or
    reset connections, timeouts, HTTP 429 and 5xx. Such an operation may succeed if tried again."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if isinstance(current, OSError) and current.errno in _TRANSIENT_ERRNOS:
            return True
        if _TRANSIENT.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def redact_error(error: BaseException | str) -> str:
    """An error message safe to log: URL query strings (where a SAS token would be) are cut off."""
    return _URL_QUERY.sub(r"\1?…", str(error))


class LakeWriteError(RuntimeError):
    """A write that did not happen. The table is as it was before the write."""


def data_version(metadata: dict[str, Any]) -> dg.DataVersion | None:
    """The Dagster data version of a table: its Delta version. A run that finds a table unchanged reports the
    same data version, so nothing downstream turns "Unsynced" in the UI because of it."""
    version = metadata.get("delta_version")
    version = getattr(version, "value", version)
    return None if version is None else dg.DataVersion(f"delta-v{version}")


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


#: Merges of up to this many source rows prune target files by the source's key range (see ``merge``).
PRUNED_MERGE_ROWS = 500_000
#: Column marking, in a merge's source, the keys to delete (``DeltaLake.merge(delete_keys=...)``).
_DELETE = "_kpi_lake_delete"


def _blob_path(uri: str) -> str:
    """``container/path`` of an Azure URI, as fsspec (adlfs) names a blob."""
    location = parse_azure_uri(uri)
    return f"{location.container}/{location.path}"


class DeltaLake(dg.ConfigurableResource):
    """Delta tables under ``root`` (a local folder or ``az://`` / ``abfss://`` URI), one per asset key."""

    root: str = "lake"
    azure: AzureStorage
    #: Attempts after the first for an operation that failed with a transient storage error (see
    #: :func:`is_transient_error`), waiting ``retry_backoff_seconds`` × 2ⁿ (±20 %) before attempt n+1.
    retry_attempts: int = 4
    retry_backoff_seconds: float = 2.0
    #: object_store's own per-request retries (delta-rs default: 10, within 3 minutes) for delta-rs calls;
    #: None keeps the default. The lake's retries above wrap whole operations around those.
    object_store_retries: int | None = None

    # ---- where tables are -------------------------------------------------------------------------------
    def uri(self, ref: TableRef) -> str:
        return join_uri(self.root, ref.path)

    def storage_options(self) -> dict[str, str] | None:
        return self.azure.delta_storage_options(self.root) if is_remote(self.root) else None

    # ---- small documents beside the tables (reports, records) ---------------------------------------------
    def write_document(self, uri: str, data: bytes) -> None:
        """Write a small file at ``uri`` (in the lake's folder or container) whole: a reader sees the old
        content or the new. Locally through a rename; on Azure a blob upload replaces the blob at once."""
        if not is_remote(uri):
            write_atomically(local_path(uri), data)
            return
        self.azure.filesystem(self.root).pipe_file(_blob_path(uri), data)

    def read_document(self, uri: str) -> bytes:
        """The bytes of a file :meth:`write_document` wrote; ``FileNotFoundError`` when there is none."""
        if not is_remote(uri):
            return local_path(uri).read_bytes()
        return self.azure.filesystem(self.root).cat_file(_blob_path(uri))

    def _delta_options(self) -> dict[str, str] | None:
        """Storage options for delta-rs calls (not polars readers, which type these keys differently)."""
        options = self.storage_options()
        if options is not None and self.object_store_retries is not None:
            options = {**options, "max_retries": str(self.object_store_retries), "retry_timeout": "60s"}
        return options

    def _retrying(self, what: str, operation: Callable[[], T], *, retries: list[int] | None = None) -> T:
        """Run ``operation``, again after a backoff when it fails with a transient storage error.

        Each retry is logged (the error redacted) and counted in ``retries`` when given. Non-transient errors,
        and the last transient one, are raised as they are.
        """
        log = dg.get_dagster_logger("kpi_lake.lake")
        attempt = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                if attempt >= self.retry_attempts or not is_transient_error(exc):
                    raise
                delay = min(self.retry_backoff_seconds * 2**attempt, MAX_BACKOFF_SECONDS)
                delay *= random.uniform(0.8, 1.2)
                attempt += 1
                if retries is not None:
                    retries.append(attempt)
                log.warning(
                    f"{what}: transient storage error, retry {attempt} of {self.retry_attempts} in "
                    f"{delay:.1f}s: {redact_error(exc).splitlines()[0][:300]}"
                )
                time.sleep(delay)

    def _committed(self, uri: str, write_id: str) -> bool:
        """Whether a commit carrying ``write_id`` is among the table's latest (an attempt that failed after
        committing, e.g. the response was lost), so that a retry does not write the rows twice."""
        from deltalake import DeltaTable

        options = self._delta_options()
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            return False
        return any(
            c.get(WRITE_ID_KEY) == write_id for c in DeltaTable(uri, storage_options=options).history(10)
        )

    def _discard_uncommitted(self, ref: TableRef, since: float) -> None:
        """Remove the data files a failed write left in ``ref``'s folder: written since ``since`` (``time.time()``)
        and in no version of the table as it stands. The write committed nothing, but a streamed write may have
        flushed some files before its source failed (a file polars cannot stream). Tidying only: a table never
        reads a file its log does not name, and a failure here is logged, never raised over the write's own.
        Only for a table with one writer at a time (its pool, the lake lock): a file another writer has written
        but not yet committed would look the same."""
        from deltalake import DeltaTable

        uri, options = self.uri(ref), self._delta_options()
        try:
            named: set[str] = set()
            if DeltaTable.is_deltatable(uri, storage_options=options):
                table = DeltaTable(uri, storage_options=options)
                named = {path.rsplit("/", 1)[-1] for path in table.file_uris()}
            if is_remote(uri):
                # 2 s of slack: a blob's time is to the second (and the service's clock, not this host's).
                fs, folder, slack = self.azure.filesystem(self.root), _blob_path(uri), 2.0
            else:
                import fsspec

                # 50 ms of slack: a file's time comes from a coarser clock than time.time().
                fs, folder, slack = fsspec.filesystem("file"), local_path(uri).as_posix(), 0.05
            listed = fs.find(folder, detail=True) if fs.exists(folder) else {}
            left = [
                path
                for path, info in listed.items()
                if path.endswith(".parquet")
                and "/_delta_log/" not in path
                and _modified(info) + slack >= since
                and path.rsplit("/", 1)[-1] not in named
            ]
            for path in left:
                fs.rm_file(path)
            if left:
                dg.get_dagster_logger("kpi_lake.lake").info(
                    f"{ref}: removed {len(left)} data files the failed write left (it committed nothing)"
                )
        except Exception as exc:  # tidying must not hide why the write failed
            dg.get_dagster_logger("kpi_lake.lake").warning(
                f"{ref}: could not tidy the files a failed write left: {redact_error(exc)}"
            )

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
        from deltalake import DeltaTable

        # delta-rs raises (rather than answering False) when storage cannot be reached, so a retried answer
        # is a true one.
        return self._retrying(
            f"checking {ref}",
            lambda: DeltaTable.is_deltatable(self.uri(ref), storage_options=self._delta_options()),
        )

    def delta_table(self, ref: TableRef, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        return self._retrying(
            f"opening {ref}",
            lambda: DeltaTable(self.uri(ref), version=version, storage_options=self.storage_options()),
        )

    def scan(self, ref: TableRef, *, version: int | None = None) -> pl.LazyFrame:
        """A lazy scan of the table (nothing is read until it is collected)."""
        if not self.exists(ref):
            raise LakeWriteError(
                f"table {ref} does not exist yet at {redact(self.uri(ref))}: materialise it first"
            )
        return self._retrying(
            f"scanning {ref}",
            lambda: pl.scan_delta(self.uri(ref), version=version, storage_options=self.storage_options()),
        )

    def state(
        self, ref: TableRef, operation: str = "read", metrics: dict[str, Any] | None = None
    ) -> TableState:
        """Version, row count (from the Delta log, no data read) and schema of a table."""
        return self._retrying(f"reading the state of {ref}", lambda: self._state(ref, operation, metrics))

    def _state(self, ref: TableRef, operation: str, metrics: dict[str, Any] | None) -> TableState:
        from deltalake import DeltaTable

        table = DeltaTable(self.uri(ref), storage_options=self.storage_options())
        actions = pl.DataFrame(table.get_add_actions(flatten=True))
        rows = int(actions["num_records"].sum()) if actions.height else 0
        schema = _polars_schema(table)
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
        file_bytes: int | None = None,
    ) -> TableState:
        """Replace the whole table (schema included) in one commit. ``commit_metadata`` is stored in the Delta
        log with the commit (keys prefixed ``kpi_lake.``): what the table was built from. ``file_bytes``: the
        size of its data files, kept by later merges (see :meth:`_write`)."""
        return self._write(
            ref,
            data,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=partition_by,
            commit_metadata=commit_metadata,
            file_bytes=file_bytes,
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

    def compact(self, ref: TableRef) -> int:
        """Bin-pack the table's small files into larger ones, in one commit (appends may run meanwhile; any
        other write makes it fail, changing nothing). Returns how many files it replaced. The rows, and every
        earlier version, stay as they were."""
        metrics = self._retrying(f"compacting {ref}", lambda: self.delta_table(ref).optimize.compact())
        return int(metrics.get("numFilesRemoved", 0))

    def replace_where(
        self, ref: TableRef, data: Frame, predicate: str, *, unique_keys: list[str] | None = None
    ) -> TableState:
        """Replace the rows matching ``predicate`` (one partition, one source file) with ``data``, atomically.

        Every row of ``data`` must match the predicate. On a table that does not exist yet, this creates it
        (and if another writer creates it first, replaces its matching rows instead: never twice the rows).
        ``unique_keys``: the caller checked these keys unique in the table (:meth:`heal_duplicate_keys`) and in
        ``data``, and the predicate removes every row ``data`` could repeat; recorded with the commit.
        """
        metadata = _unique_keys_metadata(unique_keys)
        if not self.exists(ref):
            created = self._create(ref, data, commit_metadata=metadata)
            if created is not None:
                return created
        return self._write(
            ref, data, mode="overwrite", schema_mode="merge", predicate=predicate, commit_metadata=metadata
        )

    def _create(
        self,
        ref: TableRef,
        data: Frame,
        commit_metadata: dict[str, str] | None = None,
        file_bytes: int | None = None,
    ) -> TableState | None:
        """Write a table's first version, failing if the table exists by then: two writers that both found no
        table cannot both append (Delta commits version 0 only once). None when another writer created it
        first: the caller then writes into the existing table as usual. ``file_bytes`` sets the table's
        ``delta.targetFileSize``: the size of the files this write and every later merge writes."""
        try:
            return self._write(
                ref,
                data,
                mode="error",
                schema_mode="merge",
                commit_metadata=commit_metadata,
                file_bytes=file_bytes,
            )
        except LakeWriteError:
            if self.exists(ref):
                dg.get_dagster_logger("kpi_lake.lake").info(
                    f"{ref} was created by another writer meanwhile: writing into it instead"
                )
                return None
            raise

    def heal_duplicate_keys(
        self,
        ref: TableRef,
        keys: list[str],
        latest_by: str | None = LOADED_AT,
        optional_keys: list[str] | None = None,
    ) -> int:
        """Make ``keys`` unique again in a table that holds some of them more than once (what two unguarded
        writers racing once could leave), keeping for each key the row with the largest ``latest_by`` (when
        the table has that column). One commit; rows with a null in ``keys`` are left as they are, while
        ``optional_keys`` are part of the key with null as one more value (a CSV row has no sheet). Keys the
        table does not have are left out. Returns how many rows were removed (0 when nothing was wrong).

        When the latest commit says it left these keys unique (``UNIQUE_KEYS_KEY``: written by the lake's own
        writers, which check before they write and hold the lake lock), only the Delta log is read, so the
        cost is the same at any table size. Any other latest commit (a writer that promised nothing, an older
        kpi-lake) means a full check."""
        if not self.exists(ref):
            return 0
        promised = self.last_commit_metadata(ref).get(UNIQUE_KEYS_KEY)
        if promised is not None and promised == ",".join([*keys, *(optional_keys or [])]):
            return 0
        scan = self.scan(ref)
        columns = scan.collect_schema().names()
        required = [k for k in keys if k in columns]
        if not required:
            return 0
        keys = required + [k for k in optional_keys or [] if k in columns]
        keyed = pl.all_horizontal(pl.col(k).is_not_null() for k in required)
        counts = (
            scan.filter(keyed)
            .select(
                pl.len().alias("rows"),
                # One key column counts much faster on its own than wrapped in a struct.
                (pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)).n_unique().alias("keys"),
            )
            .collect()
            .row(0, named=True)
        )
        surplus = int(counts["rows"]) - int(counts["keys"])
        if surplus <= 0:
            return 0
        ordered = (
            scan.sort(latest_by, descending=True, nulls_last=True, maintain_order=True)
            if (latest_by in columns)
            else scan
        )
        healed = pl.concat(
            [
                ordered.filter(keyed).unique(subset=keys, keep="first", maintain_order=True),
                scan.filter(~keyed),
            ]
        ).collect()
        partitions = list(self.delta_table(ref).metadata().partition_columns)
        self._write(
            ref,
            healed,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=partitions or None,
            commit_metadata={"healed_duplicate_keys": surplus},
        )
        dg.get_dagster_logger("kpi_lake.lake").warning(
            f"{ref} held {surplus} rows whose key ({', '.join(keys)}) was already there: removed, keeping the "
            "latest row of each key"
        )
        return surplus

    def replace_partitions(
        self, ref: TableRef, data: Frame, predicate: str, *, commit_metadata: dict[str, str] | None = None
    ) -> TableState:
        """Replace the partitions matching ``predicate`` (on partition columns) with ``data`` in one commit that
        records ``commit_metadata`` (see :meth:`overwrite`); the table's other partitions are not touched."""
        return self._write(
            ref,
            data,
            mode="overwrite",
            schema_mode="merge",
            predicate=predicate,
            commit_metadata=commit_metadata,
        )

    def withdraw(self, ref: TableRef, bad_version: int, reason: str) -> TableState:
        """Take a version that failed a blocking check out of what readers see, in one new commit: back to
        the version before it, or, for a table's first version, no rows at all. The bad version stays in the
        Delta history for whoever investigates."""
        from deltalake import CommitProperties

        table = self.delta_table(ref)
        properties = CommitProperties(
            custom_metadata={"kpi_lake.withdrawn_version": str(bad_version), "kpi_lake.reason": reason}
        )
        if bad_version > 0:
            table.restore(bad_version - 1, commit_properties=properties)
        else:
            table.delete(commit_properties=properties)
        return self.state(ref, operation="withdraw")

    def merge(
        self,
        ref: TableRef,
        data: Frame,
        keys: list[str],
        *,
        delete_missing: bool = False,
        only_if_changed: list[str] | None = None,
        file_bytes: int | None = None,
        delete_keys: pl.DataFrame | None = None,
        commit_metadata: dict[str, str] | None = None,
        matched_from: tuple[str, Any] | None = None,
    ) -> TableState:
        """Upsert ``data`` on ``keys``: update matches, insert the rest (and with ``delete_missing``, delete
        target rows that ``data`` lacks). ``only_if_changed`` limits updates to rows where one of those columns
        differs, so a rerun with the same data rewrites nothing. ``delete_keys`` (rows of the key columns, none
        of them in ``data``) are deleted in the same commit. ``file_bytes``: the data file size of a table
        this creates (see :meth:`_create`). ``commit_metadata`` is stored with the commit, as by :meth:`overwrite`.

        A merge rewrites every data file holding a matched row (delta-rs writes no deletion vectors), so a table
        of modest files whose changes gather in few of them rewrites only those; a source of up to
        ``PRUNED_MERGE_ROWS`` rows also skips reading the files outside its key range.

        ``matched_from=(column, lowest)`` says that every target row a source key matches holds ``column`` at
        ``lowest`` or later, never null (the caller has looked): the merge then reads only the files whose
        statistics allow such rows. A bronze table written in stamp order, merging a night's updates of recent
        rows, skips its older files (at 1.9M rows: 0.5-0.7 s → 0.23 s). A wrong promise would insert a second
        row for a key, so the caller finds ``lowest`` from the target itself, under the lake lock.
        """
        from deltalake import CommitProperties, DeltaTable

        frame = delta_compatible(data).collect() if isinstance(data, pl.LazyFrame) else delta_compatible(data)
        deleting = delete_keys is not None and delete_keys.height > 0
        if deleting:
            assert delete_keys is not None
            frame = pl.concat(
                [
                    frame.with_columns(pl.lit(False).alias(_DELETE)),
                    delta_compatible(delete_keys.select(keys)).with_columns(pl.lit(True).alias(_DELETE)),
                ],
                how="diagonal_relaxed",
            )
        duplicates = frame.group_by(keys).len().filter(pl.col("len") > 1)
        if duplicates.height:
            sample = duplicates.head(3).drop("len").to_dicts()
            raise LakeWriteError(
                f"merge into {ref}: {duplicates.height} keys appear more than once, e.g. {sample}"
            )
        if not self.exists(ref):
            created = self._create(
                ref,
                frame.filter(~pl.col(_DELETE)).drop(_DELETE) if deleting else frame,
                commit_metadata={**(commit_metadata or {}), **_unique_keys_metadata(keys)},
                file_bytes=file_bytes,
            )
            if created is not None:
                return created
        # A target that holds a key twice (left by two writers racing, before the lake lock) never heals
        # by merging into it: make its keys unique first.
        self.heal_duplicate_keys(ref, keys)
        predicate = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
        if matched_from is not None:
            column, lowest = matched_from
            predicate += f" AND t.{_quote(column)} >= {_sql_literal(lowest)}"
        changed = None
        if only_if_changed:
            changed = " OR ".join(_null_safe_differs(c) for c in only_if_changed)
        uri, write_id, retries = self.uri(ref), uuid.uuid4().hex, []

        def attempt() -> dict[str, Any]:
            if retries and self._committed(uri, write_id):
                return {"committed_by_an_earlier_attempt": True}
            merger = DeltaTable(uri, storage_options=self._delta_options()).merge(
                frame.to_arrow(),
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=not deleting,  # the delete flag is the source's own column, not the table's
                # A source of changed rows is small: not streaming it lets delta-rs prune target files by its
                # key range instead of scanning every file. A large one (a full reconciliation) streams as
                # before: it spans most files anyway, and holding it raised peak memory (1.33 → 1.46 GB for a
                # merge of 1.8M rows).
                streamed_exec=frame.height > PRUNED_MERGE_ROWS,
                commit_properties=CommitProperties(
                    # The keys were made unique above and the source repeats none: the merge keeps them so.
                    custom_metadata={
                        **{f"kpi_lake.{k}": str(v) for k, v in (commit_metadata or {}).items()},
                        "kpi_lake.operation": "merge",
                        WRITE_ID_KEY: write_id,
                        UNIQUE_KEYS_KEY: ",".join(keys),
                    }
                ),
            )
            if deleting:
                columns = {c: f"s.{_quote(c)}" for c in frame.columns if c != _DELETE}
                kept = f"NOT s.{_quote(_DELETE)}"
                merger = (
                    merger.when_matched_delete(predicate=f"s.{_quote(_DELETE)}")
                    .when_matched_update(
                        updates=columns, predicate=f"{kept} AND ({changed})" if changed else kept
                    )
                    .when_not_matched_insert(updates=columns, predicate=kept)
                )
            else:
                merger = merger.when_matched_update_all(predicate=changed).when_not_matched_insert_all()
            if delete_missing:
                merger = merger.when_not_matched_by_source_delete()
            return merger.execute()

        try:
            metrics = self._retrying(f"merging into {ref}", attempt, retries=retries)
        except Exception as exc:  # delta-rs raises several error types; the table is unchanged either way
            raise LakeWriteError(
                f"merge into {ref} at {redact(uri)} failed{_after(retries)}: {redact_error(exc)}"
            ) from exc
        if retries:
            metrics = {**metrics, "retries": len(retries)}
        return self.state(ref, operation="merge", metrics=metrics)

    def _write(
        self,
        ref: TableRef,
        data: Frame,
        *,
        mode: Literal["append", "overwrite", "error"],
        schema_mode: Literal["merge", "overwrite"],
        predicate: str | None = None,
        partition_by: list[str] | None = None,
        commit_metadata: dict[str, str] | None = None,
        file_bytes: int | None = None,
    ) -> TableState:
        from deltalake import CommitProperties, WriterProperties

        options: dict[str, Any] = {
            "schema_mode": schema_mode,
            # Snappy, as delta-rs writes by default: WriterProperties alone would mean uncompressed files.
            "writer_properties": WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="SNAPPY"),
        }
        write_id, retries = uuid.uuid4().hex, []
        options["commit_properties"] = CommitProperties(
            custom_metadata={
                **{f"kpi_lake.{k}": str(v) for k, v in (commit_metadata or {}).items()},
                WRITE_ID_KEY: write_id,
            }
        )
        if predicate:
            options["predicate"] = predicate
        if partition_by:
            options["partition_by"] = partition_by
        if file_bytes:
            options["target_file_size"] = file_bytes
            options["configuration"] = {"delta.targetFileSize": str(file_bytes)}
        uri = self.uri(ref)
        if not is_remote(self.root):
            local_path(uri).parent.mkdir(parents=True, exist_ok=True)

        def attempt(prepared: Frame) -> None:
            # An attempt that failed after its commit landed (the reply was lost) must not be repeated:
            # an append would add the rows twice.
            if retries and self._committed(uri, write_id):
                return
            if isinstance(prepared, pl.LazyFrame):
                # Streaming: large sources are written without collecting them in memory first.
                prepared.sink_delta(
                    uri, mode=mode, storage_options=self._delta_options(), delta_write_options=options
                )
            else:
                prepared.write_delta(
                    uri, mode=mode, storage_options=self._delta_options(), delta_write_options=options
                )

        started = time.time()
        try:
            prepared = delta_compatible(data)
            self._retrying(f"writing {ref} ({mode})", lambda: attempt(prepared), retries=retries)
        except Exception as exc:
            if mode != "append":  # appends may come from several writers at once (the checks' history)
                self._discard_uncommitted(ref, started)
            raise LakeWriteError(
                f"writing {ref} to {redact(uri)} ({mode}) failed{_after(retries)}: {redact_error(exc)}"
            ) from exc
        return self.state(
            ref,
            operation=("create" if mode == "error" else mode) if not predicate else "replace_where",
            metrics={"retries": len(retries)} if retries else None,
        )


def _polars_schema(table: Any) -> pl.Schema:
    """A Delta table's schema in polars' types, from the log alone (what ``scan_delta`` gives, without the cost
    of a first scan in the process)."""
    import arro3.core

    return pl.DataFrame(arro3.core.Table.from_batches([], schema=table.schema().to_arrow())).schema


def _unique_keys_metadata(keys: list[str] | None) -> dict[str, str]:
    """The commit metadata promising ``keys`` unique after the commit (see ``UNIQUE_KEYS_KEY``)."""
    # Without the ``kpi_lake.`` prefix: ``_write`` adds it to commit_metadata.
    return {UNIQUE_KEYS_KEY.removeprefix("kpi_lake."): ",".join(keys)} if keys else {}


def _after(retries: list[int]) -> str:
    return f" after {len(retries)} retries" if retries else ""


def _quote(column: str) -> str:
    return f"`{column}`"


def _modified(info: dict[str, Any]) -> float:
    """When a file was last written, from an fsspec listing: a local file's ``mtime``, a blob's ``last_modified``
    (0 when neither is given: taken as old, left alone)."""
    if info.get("mtime") is not None:
        return float(info["mtime"])
    modified = info.get("last_modified")
    return modified.timestamp() if modified is not None else 0.0


def _sql_literal(value: Any) -> str:
    """``value`` as a literal in a delta-rs (DataFusion) predicate, compared with a column of its own type."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, dt.date)):
        raise TypeError(f"no SQL literal for {value!r} ({type(value).__name__})")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        value = value.isoformat(sep="T")
    elif isinstance(value, dt.date):
        value = value.isoformat()
    return "'" + value.replace("'", "''") + "'"


def _null_safe_differs(column: str) -> str:
    t, s = f"t.{_quote(column)}", f"s.{_quote(column)}"
    return f"(({t} IS NULL) <> ({s} IS NULL) OR {t} <> {s})"
