"""A semantic table saved to a file: item vectors made on one machine (where the LLM and the encoder are) and
trained with on another (a GPU box without them). `kirec embed --export` writes one; `knowledge.semantic_table`
reads it instead of extracting and embedding.

The file is a NumPy `.npy` array [num_items + 1, dim], row i the vector of item index i and row 0 the padding
row (zeros), float32 or float16 (half the size to carry; read back as float32).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from engine.config import ConfigError


def save_semantic_table(table: np.ndarray, path: str | Path, half: bool = False) -> Path:
    path = Path(path)
    if path.suffix != ".npy":
        raise ConfigError(f"{path}: a semantic table is saved as .npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, table.astype(np.float16 if half else np.float32))
    return path


def load_semantic_table(path: str | Path, num_items: int) -> tuple[np.ndarray, str]:
    """(table as float32, sha256 of the file's first 16 hex digits); one-line errors name the file."""
    path = Path(path)
    try:
        table = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"knowledge.semantic_table: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"knowledge.semantic_table: {path} is not a .npy array ({exc})") from None
    if table.ndim != 2 or table.dtype not in (np.float16, np.float32):
        raise ConfigError(
            f"knowledge.semantic_table: {path} holds a {table.dtype} array of shape {table.shape},"
            " expected float32 or float16 [items + 1, dim]"
        )
    if table.shape[0] != num_items + 1:
        raise ConfigError(
            f"knowledge.semantic_table: {path} has {table.shape[0]} rows; this dataset needs"
            f" {num_items + 1} (its {num_items} items and the padding row 0)"
        )
    table = table.astype(np.float32)
    if not np.isfinite(table).all():
        raise ConfigError(f"knowledge.semantic_table: {path} holds NaN or infinite values")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return table, digest
