"""Summary statistics of a preprocessed dataset: the figures papers report, so they can be checked."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.data.dataset import SequenceDataset


def _non_empty(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (list, tuple, dict, str)):
        return len(value) > 0 and (not isinstance(value, str) or bool(value.strip()))
    return True


def dataset_stats(ds: SequenceDataset) -> dict[str, Any]:
    """Users, items, interactions, sequence lengths, density, and per text field the fraction of items with a
    non-empty value (`text_coverage`, fields in alphabetical order)."""
    lengths = np.array([len(s) for s in ds.sequences], dtype=np.int64)
    users, items = ds.num_users, ds.num_items
    interactions = int(lengths.sum())
    fields = sorted({key for text in ds.item_text[1:] for key in text})
    coverage = {
        field: (sum(_non_empty(text.get(field)) for text in ds.item_text[1:]) / items if items else 0.0)
        for field in fields
    }
    return {
        "name": ds.name,
        "users": users,
        "items": items,
        "interactions": interactions,
        "mean_sequence_length": float(lengths.mean()) if users else 0.0,
        "median_sequence_length": float(np.median(lengths)) if users else 0.0,
        "min_sequence_length": int(lengths.min()) if users else 0,
        "max_sequence_length": int(lengths.max()) if users else 0,
        "density": interactions / (users * items) if users and items else 0.0,
        "text_coverage": coverage,
    }
