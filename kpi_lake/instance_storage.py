"""Dagster's local (SQLite) instance storage, with the event log's connections kept instead of opened per write.

Dagster's SQLite event log creates a SQLAlchemy engine and opens a connection for every read and write of a
run's events: a nightly with 105 assets and 508 checks writes about 2 000 events and opened about 11 000
connections, two thirds of a quiet nightly's time on a local instance (30 s → 14 s with them kept). Here the
index and the most recently used run databases each keep an engine with one connection per thread; every
operation is still its own transaction, so other processes (the UI, the daemon, a second run) see the same files
and locks as before, and at most ``KEPT_SHARDS`` run databases are held open. The files and their layout under
``DAGSTER_HOME`` are Dagster's own (``history/``, ``history/runs/``, ``schedules/``): an existing home keeps its
history. Configured in ``deploy/local/dagster.yaml``; production uses PostgreSQL.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.pool import SingletonThreadPool

#: Run databases whose connections stay open at once (besides the index): a UI browsing many runs holds no more.
KEPT_SHARDS = 8


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` keeping an engine (one connection per thread) for the index and the
    ``KEPT_SHARDS`` most recently used run databases."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Any] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any):  # type: ignore[override]
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=SingletonThreadPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                self._engines[shard] = engine
                runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
                for oldest in runs[: max(0, len(runs) - KEPT_SHARDS)]:
                    self._dispose(oldest)
            else:
                self._engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def delete_events(self, run_id: str) -> None:
        self._dispose(run_id)
        super().delete_events(run_id)

    def wipe(self) -> None:
        for shard in list(self._engines):
            self._dispose(shard)
        super().wipe()

    def dispose(self) -> None:
        for shard in list(self._engines):
            self._dispose(shard)
        super().dispose()

    def _dispose(self, shard: str) -> None:
        engine = self._engines.pop(shard, None)
        if engine is not None:
            engine.dispose()


class LocalSqliteStorage(DagsterSqliteStorage):
    """Dagster's default storage for a ``DAGSTER_HOME`` (same files), with the kept-engine event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = KeptEngineSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any):  # type: ignore[override]
        return cls.from_local(inst_data=inst_data, **config_value)
