"""On-disk cache of text embeddings, keyed by (encoder fingerprint, sha256 of the text).

One SQLite file of float32 blobs: WAL journaling and a busy timeout let several processes read and write it at
once (two runs embedding the same catalogue), and `INSERT OR IGNORE` makes a race between them harmless, since
the same key always maps to the same vector. Only texts missing from the cache reach the encoder, and each
encoded chunk is committed at once, so an interrupted job keeps what it finished.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from engine.semantic.encoders import ProgressCallback, TextEncoder
from engine.sqlite_files import connect

DB_NAME = "embeddings.sqlite"
_LOOKUP_CHUNK = 500  # keys per SELECT, well under SQLite's bound-variable limit
_ENCODE_CHUNK = 2048  # texts encoded (and committed) at a time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    fingerprint TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (fingerprint, text_sha256)
) WITHOUT ROWID
"""


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors on disk under `folder` (default `<workspace>/.cache/embeddings/`)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / DB_NAME
        try:
            self._conn = connect(self.path)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a usable embedding cache ({exc})") from None
        try:
            self._conn.execute(_SCHEMA)
            self._conn.commit()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ValueError(f"{self.path}: not a usable embedding cache ({exc})") from None

    @classmethod
    def in_working_dir(cls, cwd: str | Path) -> "EmbeddingCache":
        """The default cache of the workspace `cwd` (a run's is its `Workspace.embedding_cache`)."""
        from engine.workspace import Workspace

        return cls(Workspace.at(cwd).embedding_cache)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys` (text sha256s); missing keys are simply absent."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = list(keys[start : start + _LOOKUP_CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT text_sha256, dim, vector FROM embeddings WHERE fingerprint = ? AND text_sha256 IN ({marks})",
                [fingerprint, *chunk],
            )
            for key, dim, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape != (dim,):
                    raise ValueError(
                        f"{self.path}: corrupt entry {fingerprint}/{key} ({vector.size} floats, expected {dim})"
                    )
                found[key] = vector
        return found

    def put_many(self, fingerprint: str, entries: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = []
        for key, vector in entries:
            vector = np.ascontiguousarray(vector, dtype=np.float32)
            rows.append((fingerprint, key, int(vector.shape[0]), vector.tobytes()))
        with self._conn:  # one transaction
            self._conn.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    def count(self, fingerprint: str | None = None) -> int:
        if fingerprint is None:
            return int(self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        return int(
            self._conn.execute("SELECT COUNT(*) FROM embeddings WHERE fingerprint = ?", (fingerprint,)).fetchone()[0]
        )


@dataclass(frozen=True)
class EmbedStats:
    texts: int
    unique: int
    cached: int  # unique texts found in the cache
    encoded: int  # unique texts sent to the encoder
    encode_seconds: float

    def as_info(self) -> dict[str, float | int]:
        return {
            "embed_texts": self.texts,
            "embed_unique": self.unique,
            "embed_cached": self.cached,
            "embed_encoded": self.encoded,
            "embed_seconds": round(self.encode_seconds, 3),
        }


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder,
    cache: EmbeddingCache | None,
    batch_size: int = 64,
    on_progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, EmbedStats]:
    """Vectors [len(texts), dim] for `texts`; duplicates are encoded once, cached ones not at all."""
    keys = [text_key(t) for t in texts]
    unique: dict[str, str] = dict(zip(keys, texts))
    vectors = cache.get_many(encoder.fingerprint, list(unique)) if cache is not None else {}
    missing = [k for k in unique if k not in vectors]
    cached = len(unique) - len(missing)
    if on_progress is not None:
        on_progress(cached, len(unique))
    t0 = time.perf_counter()
    for start in range(0, len(missing), _ENCODE_CHUNK):
        chunk = missing[start : start + _ENCODE_CHUNK]
        encoded = encoder.encode([unique[k] for k in chunk], batch_size=batch_size)
        if cache is not None:
            cache.put_many(encoder.fingerprint, zip(chunk, encoded))
        vectors.update(zip(chunk, encoded))
        if on_progress is not None:
            on_progress(cached + start + len(chunk), len(unique))
    seconds = time.perf_counter() - t0
    if not keys:
        return np.zeros((0, encoder.dim), dtype=np.float32), EmbedStats(0, 0, 0, 0, 0.0)
    matrix = np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)
    return matrix, EmbedStats(len(texts), len(unique), cached, len(missing), seconds)


def embed_item_table(
    texts: Sequence[str],
    encoder: TextEncoder,
    cache: EmbeddingCache | None,
    batch_size: int = 64,
    on_progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, EmbedStats]:
    """The semantic table [num_items + 1, dim] for item texts 1..n, with row 0 (padding) all zeros."""
    vectors, stats = embed_texts(texts, encoder, cache, batch_size, on_progress)
    table = np.zeros((len(texts) + 1, vectors.shape[1]), dtype=np.float32)
    table[1:] = vectors
    return table, stats
