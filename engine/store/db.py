"""Opening runs.db: the engine, per-connection pragmas, the schema version and its migrations.

Several `kirec run` processes write while a TUI reads, so every connection gets WAL (readers never block
the writer), a busy timeout (a writer waits for another instead of failing) and enforced foreign keys.
Write transactions start with BEGIN IMMEDIATE: a deferred transaction that reads first and writes later
can fail at once with SQLITE_BUSY when another process committed in between, busy timeout or not.

The schema version lives in `PRAGMA user_version`. A fresh database gets the current layout from the
table classes and is stamped with SCHEMA_VERSION; an older one runs the MIGRATIONS steps above its
version, in order, inside one transaction. Steps are frozen SQL, never derived from today's tables,
so that an old step still means what it meant when it was written.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from engine.store.tables import ArtifactRow, ChangeCounterRow, MetricRow, ParamRow, RunRow, TagRow

SCHEMA_VERSION = 2
BUSY_TIMEOUT_SECONDS = 10.0
# Execution option read by the "begin" listener; set on the write engine (see write_engine()).
_BEGIN_MODE_OPTION = "kirec_sqlite_begin"

_TABLES = [t.__table__ for t in (RunRow, ParamRow, MetricRow, ArtifactRow, TagRow, ChangeCounterRow)]


class StoreError(Exception):
    """A runs database that cannot be used; the message is one line and names the file."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer kirec whose schema this code does not know."""


class StoreBusyError(StoreError):
    """Another process held the database longer than the busy timeout."""


@dataclass(frozen=True)
class Migration:
    version: int  # the schema version the database has after this step
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    # Version 1 was the first layout: runs without pid/hostname/deleted, no change counter, and only the
    # indexes that the child tables' lookups by run need.
    Migration(
        version=2,
        description="writer pid/hostname for orphan detection, soft delete, change counter, listing indexes",
        statements=(
            "ALTER TABLE runs ADD COLUMN pid INTEGER",
            "ALTER TABLE runs ADD COLUMN hostname VARCHAR",
            "ALTER TABLE runs ADD COLUMN deleted BOOLEAN DEFAULT 0 NOT NULL",
            "CREATE TABLE change_counter (id INTEGER NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (id))",
            "INSERT INTO change_counter (id, value) VALUES (1, 0)",
            "CREATE INDEX ix_runs_started_at ON runs (started_at)",
            "CREATE INDEX ix_runs_status ON runs (status)",
            "CREATE INDEX ix_runs_dataset ON runs (dataset)",
            "CREATE INDEX ix_runs_method ON runs (method)",
        ),
    ),
)


def create_db_engine(path: Path) -> Engine:
    """An engine whose every connection carries the pragmas above; nothing is opened yet."""
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        # Pooled connections may move between a UI's threads; each is used by one thread at a time.
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def write_engine(engine: Engine) -> Engine:
    """A view of `engine` (same pool, same listeners) whose transactions take the write lock up front."""
    return engine.execution_options(**{_BEGIN_MODE_OPTION: "IMMEDIATE"})


def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # pysqlite's own implicit BEGIN is disabled so that _on_begin decides how transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching a fresh file to WAL takes a lock another opener may hold.
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode, faster commits
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_MODE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def open_database(path: str | Path) -> Engine:
    """Open (creating if absent) the runs database at `path`, migrated to SCHEMA_VERSION."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a runs database file")
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(path)
    try:
        _ensure_schema(engine, path)
    except DBAPIError as exc:
        engine.dispose()
        raise StoreError(f"{path}: cannot be used as a runs database: {_one_line(exc.orig)}") from None
    except StoreError:
        engine.dispose()
        raise
    return engine


def _ensure_schema(engine: Engine, path: Path) -> None:
    with engine.connect() as conn:  # fast path, no write lock: the database is usually current
        if _user_version(conn) == SCHEMA_VERSION:
            return
    with write_engine(engine).begin() as conn:
        version = _user_version(conn)  # again, under the lock: another process may have migrated meanwhile
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{path}: schema version {version} is newer than this kirec supports ({SCHEMA_VERSION}); "
                "upgrade kirec to open it"
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            _create_fresh(conn, path)
        else:
            for migration in MIGRATIONS:
                if migration.version > version:
                    for statement in migration.statements:
                        conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _create_fresh(conn: Connection, path: Path) -> None:
    existing = [
        row[0]
        for row in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    if existing:
        # Someone else's SQLite file: adding our tables to it would be a surprise, so refuse.
        raise StoreError(
            f"{path}: not a kirec runs database (it has tables {', '.join(existing[:5])} but no kirec schema version)"
        )
    SQLModel.metadata.create_all(conn, tables=_TABLES)
    conn.exec_driver_sql("INSERT INTO change_counter (id, value) VALUES (1, 0)")


def _user_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


def _one_line(error: BaseException | None) -> str:
    return " ".join(str(error).split()) or type(error).__name__
