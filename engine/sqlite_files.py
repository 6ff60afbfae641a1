"""The one way kirec opens its SQLite files (the runs store, the extraction and embedding caches), so that they
share their settings: a busy timeout (a writer waits for another instead of failing), WAL journaling (readers
never block the writer, several processes at once) and synchronous=NORMAL (durable across a crashed process in
WAL mode, cheaper commits)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_SECONDS = 30.0


def apply_settings(connection: sqlite3.Connection, foreign_keys: bool = False) -> None:
    # busy_timeout first: switching a fresh file to WAL takes a lock another opener may hold.
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    connection.execute("PRAGMA journal_mode = WAL")
    if foreign_keys:
        connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA synchronous = NORMAL")


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to a cache file with the shared settings; usable from any thread (each cache serialises
    its own use)."""
    connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    try:
        apply_settings(connection)
    except sqlite3.DatabaseError:
        connection.close()
        raise
    return connection
