"""An experiment, not used by the pipeline: Dagster's SQLite event log with one engine per shard.

Dagster 1.13's ``SqliteEventLogStorage._connect`` builds a new SQLAlchemy engine (``NullPool``) for
every event it stores, in the run's shard and again in the index shard: a new connection, no reuse of
SQLAlchemy's compiled-statement cache (it lives on the engine), and a commit that syncs to disk. The
profile of a year's backfill (bench/results/profile.md) spends 79% of the run there. This subclass
keeps one engine per shard (``QueuePool``) and sets ``PRAGMA synchronous = NORMAL`` on its
connections (the log is in WAL mode already: a commit no longer waits for the disk; a power cut can
lose the last commits, never corrupt the file). It overrides a private method of a pinned Dagster,
so it is a measurement of what the fix is worth, to be proposed upstream or adopted with a test.

Enable it in ``$DAGSTER_HOME/dagster.yaml``:

    event_log_storage:
      module: bench.pooled_sqlite
      class: PooledSqliteEventLogStorage
      config:
        base_dir: <DAGSTER_HOME>/history/runs/
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: dict[str, Engine] = {}  # before super(): its __init__ already connects
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.close()

            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()
