"""Dotted keys for nested settings, shared by the config, the runs store and the bench (one flattening for all)."""

from __future__ import annotations

from typing import Any, Mapping


def flatten_dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"train": {"lr": 0.1}} -> {"train.lr": 0.1}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_dotted(value, path + "."))
        else:
            flat[path] = value
    return flat
