"""Helpers every format loader shares: one-line errors with file and line, text normalisation, JSON-lines items."""

from __future__ import annotations

import gzip
import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Iterable

import numpy as np

from engine.data.dataset import RawInteractions
from engine.data.errors import DataFormatError

# Keys whose values are lists of str after normalisation; everything else is one str.
LIST_FIELDS = frozenset({"genres", "tags", "categories"})
_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")


def format_error(path: Path | str, line: int | None, message: str) -> DataFormatError:
    where = f"{path} line {line}" if line is not None else str(path)
    return DataFormatError(f"{where}: {' '.join(message.split())}")


def open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    """Open a text file, transparently gunzipping `.gz`; `newline=""` so csv sees quoted newlines."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return path.open("r", encoding=encoding, newline="")


def to_float(value: str, path: Path, line: int, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise format_error(path, line, f"{what} {value!r} is not a number") from None
    if math.isnan(number):
        raise format_error(path, line, f"{what} is NaN")
    return number


def to_timestamp(value: str, path: Path, line: int) -> float:
    """A number (Unix seconds or any orderable number) or an ISO 8601 date/time."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise format_error(path, line, f"timestamp {value!r} is neither a number nor an ISO 8601 date") from None


def year_from_title(title: str) -> str | None:
    match = _YEAR_IN_TITLE.search(title)
    return match.group(1) if match else None


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return " ".join(str(value).split())  # one line: the LLM prompt and the TUI both want single-line fields


def normalise_text(fields: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values; LIST_FIELDS become lists of non-empty str, every other value one str."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key in LIST_FIELDS:
            values = value if isinstance(value, (list, tuple)) else [value]
            texts = [_as_text(v) for v in values if v is not None]
            texts = [t for t in texts if t]
            if texts:
                clean[key] = texts
        else:
            text = _as_text(value)
            if text:
                clean[key] = text
    return clean


def read_items_jsonl(path: Path, id_keys: Iterable[str] = ("id", "item_id", "asin")) -> dict[str, dict[str, Any]]:
    """One JSON object per line; the item id is the first of `id_keys` present; other keys are text fields."""
    keys = tuple(id_keys)
    items: dict[str, dict[str, Any]] = {}
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise format_error(path, line_no, f"invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise format_error(path, line_no, "expected a JSON object")
            key = next((k for k in keys if obj.get(k) not in (None, "")), None)
            if key is None:
                raise format_error(path, line_no, f"no item id (expected one of {', '.join(keys)})")
            item_id = str(obj.pop(key))
            for other in keys:
                obj.pop(other, None)
            items[item_id] = normalise_text(obj)
    return items


def make_raw(
    name: str,
    users: list[str],
    items: list[str],
    timestamps: list[float],
    ratings: list[float] | None,
    item_text: dict[str, dict[str, Any]],
    source: Path,
) -> RawInteractions:
    return RawInteractions(
        name=name,
        users=np.array(users, dtype=object),
        items=np.array(items, dtype=object),
        timestamps=np.asarray(timestamps, dtype=np.float64),
        ratings=None if ratings is None else np.asarray(ratings, dtype=np.float64),
        item_text=item_text,
        source=str(source),
    )
