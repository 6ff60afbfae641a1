"""Opening runs.db: the engine, per-connection pragmas, the schema version and its migrations.

Several `kirec run` processes write while a TUI reads, so every connection gets WAL (readers never block
the writer), a busy timeout (a writer waits for another instead of failing) and enforced foreign keys.
Write transactions start with BEGIN IMMEDIATE: a deferred transaction that reads first and writes later
can fail at once with SQLITE_BUSY when another process committed in between, busy timeout or not.

Before any of that, an existing file is inspected without changing it (see `_inspect_existing`): a file that
is not a kirec runs database, or one from a newer kirec, is refused while still byte-identical (connecting
would already switch it to WAL and leave -wal/-shm files beside it).

The schema version lives in `PRAGMA user_version`. A fresh database gets the current layout from the
table classes and is stamped with SCHEMA_VERSION; an older one runs the MIGRATIONS steps above its
version, in order, inside one transaction. Steps are frozen SQL, never derived from today's tables,
so that an old step still means what it meant when it was written.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from engine.sqlite_files import BUSY_TIMEOUT_SECONDS, apply_settings
from engine.store.tables import ArtifactRow, ChangeCounterRow, LabelRow, MetricRow, ParamRow, RunRow, TagRow

SCHEMA_VERSION = 4
# Execution option read by the "begin" listener; set on the write engine (see write_engine()).
_BEGIN_MODE_OPTION = "kirec_sqlite_begin"

_TABLES = [t.__table__ for t in (RunRow, ParamRow, MetricRow, ArtifactRow, TagRow, LabelRow, ChangeCounterRow)]


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
    Migration(
        version=3,
        description="artifact hashes: a checkpoint is verified against the sha256 its run recorded",
        statements=("ALTER TABLE artifacts ADD COLUMN sha256 VARCHAR",),
    ),
    Migration(
        version=4,
        description="a researcher's tags (labels) and note on a run",
        statements=(
            "ALTER TABLE runs ADD COLUMN note VARCHAR",
            "CREATE TABLE labels (run_id INTEGER NOT NULL, label VARCHAR NOT NULL, PRIMARY KEY (run_id, label), "
            "FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE)",
        ),
    ),
)
# The tables each schema version has (a file claiming a version without them is someone else's).
_KIREC_TABLES = {1: {"runs", "params", "metrics", "artifacts", "tags"}}
_KIREC_TABLES[2] = _KIREC_TABLES[1] | {"change_counter"}
_KIREC_TABLES[3] = _KIREC_TABLES[2]
_KIREC_TABLES[4] = _KIREC_TABLES[3] | {"labels"}


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
    apply_settings(dbapi_connection, foreign_keys=True)  # the settings every kirec SQLite file shares


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_MODE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def open_database(path: str | Path, create: bool = True, require_writable: bool = False) -> Engine:
    """Open the runs database at `path`, migrated to SCHEMA_VERSION.

    `create` False: a missing file is an error (read-only commands must not leave an empty database, or
    folders, behind a typo). `require_writable`: a file or folder this process cannot write is refused up
    front, before a caller does any work it could not record.
    """
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a runs database file")
    exists = path.exists()
    if not exists and not create:
        from engine.store.domain import DatabaseNotFoundError

        raise DatabaseNotFoundError(path)
    if exists:
        _inspect_existing(path)
    if require_writable:
        _check_writable(path)
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


def _inspect_existing(path: Path) -> None:
    """Refuse a file that is not a kirec runs database, or is one of a newer schema, without changing it."""
    # The file is never opened here except through SQLite. POSIX drops every lock a process holds on a file when
    # it closes any descriptor of it, so a plain open() and close() of a database this process already has open
    # (a second store, as `kirec bench` opens per phase) released that connection's locks: the next process to
    # close its last connection then took the file for its own, checkpointed and deleted the -wal still in use,
    # and every later write went to the deleted file. SQLite's own connections share their descriptors safely.
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read: {exc.strerror}") from None
    if size == 0:
        return  # an empty file: SQLite makes it a new database
    if not os.access(path, os.R_OK):
        raise StoreError(f"{path}: cannot be read: Permission denied")
    version, tables = _read_schema_untouched(path)
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{path}: schema version {version} is newer than this kirec supports ({SCHEMA_VERSION}); "
            "upgrade kirec to open it"
        )
    if version == 0 and tables:
        raise StoreError(
            f"{path}: not a kirec runs database (it has tables {', '.join(sorted(tables)[:5])} but no kirec schema version)"
        )
    missing = _KIREC_TABLES.get(version, set()) - tables
    if version > 0 and missing:
        raise StoreError(
            f"{path}: not a kirec runs database (its user_version is {version}, but it lacks the kirec tables "
            f"{', '.join(sorted(missing))})"
        )


def _read_schema_untouched(path: Path) -> tuple[int, set[str]]:
    """(user_version, table names) read so that nothing is written, not even -wal/-shm files.

    With no -wal/-shm beside it, no connection has the file open (or one ended cleanly): `immutable=1` reads it
    without locking or creating files. Otherwise a reader is active and those files exist anyway: read-only
    mode uses them and adds nothing.
    """
    companions = any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))
    modes = ("mode=ro",) if companions else ("mode=ro&immutable=1", "mode=ro")
    for attempt, mode in enumerate(modes):
        try:
            uri = f"{path.absolute().as_uri()}?{mode}"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)) as conn:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                tables = {
                    row[0]
                    for row in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                    )
                }
            return version, tables
        except sqlite3.DatabaseError as exc:
            # An immutable read can catch another process creating the database; read it properly then.
            if attempt + 1 < len(modes):
                continue
            if "file is not a database" in str(exc):
                raise StoreError(f"{path}: not a SQLite database file, so not a kirec runs database") from None
            raise StoreError(f"{path}: cannot be used as a runs database: {_one_line(exc)}") from None
    raise AssertionError("unreachable")


def _check_writable(path: Path) -> None:
    """SQLite in WAL mode writes the file and creates -wal/-shm beside it: both must be allowed."""
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"{path}: the runs database is read-only; make it writable or choose another --db")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # a missing folder is created inside the nearest existing one
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"{path}: its folder {folder} is not writable (SQLite keeps -wal/-shm files beside the database)"
        )


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
