"""The preprocessing cache: one `.npz` (sequences) + `.json` (ids, item text, options) per key. No pickle.

Both files are written to a temporary name and renamed into place, the `.json` last, so a reader never sees a
half-written entry; an unreadable entry is treated as a miss and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from engine.data.dataset import SequenceDataset

CACHE_FORMAT = 1


def content_key(parts: dict[str, Any], files: Iterable[Path]) -> str:
    """SHA-256 over `parts` (JSON, sorted keys) and the name and contents of every file."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def entry_paths(cache_dir: Path, name: str, key: str) -> tuple[Path, Path]:
    stem = f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}-{key[:20]}"
    return cache_dir / f"{stem}.npz", cache_dir / f"{stem}.json"


def _write_atomically(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(ds: SequenceDataset, cache_dir: Path) -> Path:
    """Store `ds` under its fingerprint; returns the `.json` path."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    npz_path, json_path = entry_paths(cache_dir, ds.name, ds.fingerprint)
    lengths = np.array([len(s) for s in ds.sequences], dtype=np.int64)
    flat = np.concatenate(ds.sequences).astype(np.int64) if ds.sequences else np.zeros(0, dtype=np.int64)
    _write_atomically(npz_path, lambda fh: np.savez(fh, items=flat, lengths=lengths))
    meta = {
        "cache_format": CACHE_FORMAT,
        "name": ds.name,
        "fingerprint": ds.fingerprint,
        "options": ds.options,
        "item_ids": ds.item_ids,
        "user_ids": ds.user_ids,
        "item_text": ds.item_text,
    }
    _write_atomically(json_path, lambda fh: fh.write(json.dumps(meta, ensure_ascii=False).encode("utf-8")))
    return json_path


def load(cache_dir: Path, name: str, key: str) -> SequenceDataset | None:
    """The cached dataset for `key`, or None if there is none. Raises ValueError/OSError if an entry is damaged."""
    npz_path, json_path = entry_paths(cache_dir, name, key)
    if not json_path.exists() or not npz_path.exists():
        return None
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if meta.get("cache_format") != CACHE_FORMAT or meta.get("fingerprint") != key:
        return None
    with np.load(npz_path, allow_pickle=False) as arrays:
        flat = arrays["items"]
        lengths = arrays["lengths"]
    if len(lengths) != len(meta["user_ids"]) or int(lengths.sum()) != len(flat):
        raise ValueError(f"{npz_path}: sequence lengths do not match the stored users")
    if len(meta["item_text"]) != len(meta["item_ids"]):
        raise ValueError(f"{json_path}: item text does not match the stored items")
    sequences = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return SequenceDataset(
        name=meta["name"],
        item_ids=meta["item_ids"],
        user_ids=meta["user_ids"],
        sequences=sequences,
        item_text=meta["item_text"],
        fingerprint=key,
        options=meta["options"],
    )
