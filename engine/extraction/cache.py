"""SQLite cache of extracted attributes, keyed by (model fingerprint, prompt hash, item text hash).

The driver commits each answer as the backend hands it back, so a killed run loses only the answers still being
decoded, and the next run extracts only what is missing. Failures are stored too, with the raw output, so they are reported and can be
retried or inspected instead of silently dropped. WAL lets the TUI read while an extraction writes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.extraction.entities import unescape_fields
from engine.sqlite_files import connect

STATUS_OK = "ok"
STATUS_FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS extractions (
    model TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    item_hash TEXT NOT NULL,
    item_id TEXT NOT NULL,
    prompt_name TEXT NOT NULL,
    attributes TEXT,
    raw_output TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (model, prompt_hash, item_hash)
);
CREATE INDEX IF NOT EXISTS extractions_item ON extractions (item_id);
"""


def default_cache_path(cwd: str | Path) -> Path:
    """The default cache file of the workspace `cwd` (a run's is its `Workspace.extraction_cache`)."""
    from engine.workspace import Workspace

    return Workspace.at(cwd).extraction_cache


def item_text_hash(item_text: Mapping[str, Any]) -> str:
    """Stable hash of an item's text fields: the same text gets the same answer whatever its id or dataset.

    It hashes the text as prompts render it, with HTML entities unescaped: a text without entities keeps the hash it
    always had (so cached and shipped answers stay valid), while one with entities, whose prompt changed when
    rendering began to unescape them, gets a new hash and is asked again instead of served an answer to the old prompt.
    """
    text = unescape_fields(item_text)
    return hashlib.sha256(json.dumps(text, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class CachedExtraction:
    model: str
    prompt_hash: str
    prompt_name: str
    item_id: str
    item_hash: str
    attributes: dict[str, Any] | None
    raw_output: str
    status: str
    error: str | None
    attempts: int
    created_at: float

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


@dataclass(frozen=True)
class ExtractionRecord:
    """One answer to store."""

    item_id: str
    item_hash: str
    attributes: dict[str, Any] | None
    raw_output: str
    status: str
    attempts: int
    error: str | None = None


class ExtractionCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = connect(self.path)
            self._conn.executescript(_SCHEMA)
            self._conn.commit()
        except sqlite3.DatabaseError as exc:
            raise RuntimeError(f"{self.path}: not a usable extraction cache ({exc})") from None

    def lookup(self, model: str, prompt_hash: str, item_hashes: Iterable[str]) -> dict[str, CachedExtraction]:
        """Cached answers (ok or failed) among `item_hashes`, keyed by item hash."""
        hashes = list(dict.fromkeys(item_hashes))
        found: dict[str, CachedExtraction] = {}
        for start in range(0, len(hashes), 500):  # SQLite's bound-parameter limit
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT * FROM extractions WHERE model=? AND prompt_hash=? AND item_hash IN ({marks})",
                [model, prompt_hash, *chunk],
            )
            for row in rows:
                entry = _row(row)
                found[entry.item_hash] = entry
        return found

    def put_many(self, model: str, prompt_hash: str, prompt_name: str, records: Iterable[ExtractionRecord]) -> None:
        """Insert or replace, then commit: what is written here survives a killed process."""
        now = time.time()
        self._conn.executemany(
            "INSERT OR REPLACE INTO extractions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    model,
                    prompt_hash,
                    r.item_hash,
                    r.item_id,
                    prompt_name,
                    json.dumps(r.attributes, ensure_ascii=False) if r.attributes is not None else None,
                    r.raw_output,
                    r.status,
                    r.error,
                    r.attempts,
                    now,
                )
                for r in records
            ],
        )
        self._conn.commit()

    def item_history(self, item_id: str, item_hash: str | None = None) -> list[CachedExtraction]:
        """Every cached answer for one item, across prompts (versions) and models, newest first (the TUI's item view).

        Raw ids repeat across datasets ("1" is a movie and a product); pass the item's text hash to keep only answers
        about this very text.
        """
        if item_hash is None:
            rows = self._conn.execute("SELECT * FROM extractions WHERE item_id=? ORDER BY created_at DESC", (item_id,))
        else:
            rows = self._conn.execute(
                "SELECT * FROM extractions WHERE item_id=? AND item_hash=? ORDER BY created_at DESC",
                (item_id, item_hash),
            )
        return [_row(r) for r in rows]

    def counts(self, model: str | None = None, prompt_hash: str | None = None) -> dict[str, int]:
        """{"ok": n, "failed": m}, optionally for one model and/or prompt."""
        where, args = [], []
        if model is not None:
            where.append("model=?")
            args.append(model)
        if prompt_hash is not None:
            where.append("prompt_hash=?")
            args.append(prompt_hash)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        counts = {STATUS_OK: 0, STATUS_FAILED: 0}
        for status, n in self._conn.execute(f"SELECT status, COUNT(*) FROM extractions {clause} GROUP BY status", args):
            counts[status] = n
        return counts

    def failures(self, model: str, prompt_hash: str) -> list[CachedExtraction]:
        rows = self._conn.execute(
            "SELECT * FROM extractions WHERE model=? AND prompt_hash=? AND status=?",
            (model, prompt_hash, STATUS_FAILED),
        )
        return [_row(r) for r in rows]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ExtractionCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _row(row: tuple) -> CachedExtraction:
    model, prompt_hash, item_hash, item_id, prompt_name, attributes, raw, status, error, attempts, created = row
    return CachedExtraction(
        model=model,
        prompt_hash=prompt_hash,
        prompt_name=prompt_name,
        item_id=item_id,
        item_hash=item_hash,
        attributes=json.loads(attributes) if attributes is not None else None,
        raw_output=raw,
        status=status,
        error=error,
        attempts=attempts,
        created_at=created,
    )
