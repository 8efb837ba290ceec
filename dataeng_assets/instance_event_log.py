"""The embedded instance's event log: Dagster's SQLite event log, with one engine per shard.

Dagster 1.13's ``SqliteEventLogStorage._connect`` builds a new SQLAlchemy engine (``NullPool``) for
every statement it runs: every event a run stores opens a new connection, loses SQLAlchemy's
compiled-statement cache (it lives on the engine) and syncs the file to disk, once in the run's shard
and again in the index shard for asset and check events. A day of the pipeline stores about 170
events, so that is seconds per run (``bench/results/profile.md``, session 8).

This subclass keeps the storage, its files, schema and locking as Dagster has them and changes only
how it connects: one engine per shard, kept while in use, its connection reused (and a table found
in the index once is not looked up again before every asset event). The engines of the
least recently used shards are closed past ``MAX_ENGINES``, so a webserver or daemon that reads many
runs' shards keeps a few files open, not one per run. Its connections set ``synchronous = NORMAL``:
the log is in WAL mode already (Dagster sets it), so a commit no longer waits for the disk; a crash
of the process loses nothing, a power cut may lose the last commits and never corrupts the file
(https://sqlite.org/wal.html#performance_considerations).

It overrides a private method of the pinned Dagster (``dagster==1.13.27`` in ``pyproject.toml``);
``test_instance_event_log.py`` runs a real run through it, so an upgrade that changes the method
fails there. Production runs on PostgreSQL (``deploy/dagster.postgres.yaml``) and does not use it.
"""

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

if TYPE_CHECKING:
    from dagster import DagsterInstance

# A run's worker uses two shards (its run's and the index); the webserver and the daemon read
# a few runs at a time. Past this many, the least recently used shard's engine is closed.
MAX_ENGINES = 16


def _set_synchronous_normal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SQLite event log, one shard per run plus the index, each shard's engine kept and reused."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        # Before super().__init__: it may already connect (to create the index shard).
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_present: set[str] = set()
        self._inst_data = inst_data
        self._opened = False
        if base_dir is not None:
            self._open(base_dir)

    def _open(self, base_dir: str) -> None:
        super().__init__(base_dir, self._inst_data)
        self._opened = True

    def register_instance(self, instance: "DagsterInstance") -> None:
        # Without a base_dir, the instance's directory decides, as for Dagster's own event log
        # ($DAGSTER_HOME/history/runs, or the temporary home of `dagster dev` without one). The
        # instance hands itself over right after building its storages, before any use.
        if not self._opened:
            self._open(os.path.join(instance.root_directory, "history", "runs"))
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "base_dir": Field(
                StringSource,
                is_required=False,
                description="Directory of the shards; by default the instance's history/runs, "
                "as Dagster's own SQLite event log",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "PooledSqliteEventLogStorage":
        return cls(inst_data=inst_data, base_dir=config_value.get("base_dir"))

    def _engine(self, shard: str) -> Engine:
        if self._engines_pid != os.getpid():
            # A forked child: the parent's connections are the parent's; forget them unclosed.
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=1,
            # The lock below hands the connection from thread to thread, one at a time.
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _set_synchronous_normal)
        self._engines[shard] = engine
        while len(self._engines) > MAX_ENGINES:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # As Dagster's: one thread at a time per storage, the shard initialised on first use.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
                # The connection that created the file switched it to WAL inside a transaction
                # and stays in rollback-journal mode itself; a new connection reads WAL mode.
                engine.dispose()
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # Dagster asks before writing each asset event's tags, over a new connection each time
        # (it may hold the index shard's connection then). A table, once there, stays.
        if table_name in self._tables_present:
            return True
        present = super().has_table(table_name)
        if present:
            self._tables_present.add(table_name)
        return present

    def _dispose_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        # Dagster deletes the run shards' files: close their connections first.
        self._dispose_engines()
        self._tables_present.clear()
        super().wipe()

    def dispose(self) -> None:
        if self._opened:  # else never registered with an instance: nothing was opened
            self._dispose_engines()
            super().dispose()
