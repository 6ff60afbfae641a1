"""RecBole atomic files: `<name>.inter` and optional `<name>.item`, tab-separated, with a typed header.

The header names each column as `field:type` (`user_id:token`, `rating:float`, `class:token_seq`). Interactions
need `user_id` and `item_id`; `rating` and `timestamp` are optional. Item columns are renamed to kirec's keys
(`movie_title` -> `title`, `class` -> `genres`, `release_year` -> `year`); other columns keep their names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from engine.data.dataset import RawInteractions
from engine.data.formats.spec import FormatSpec
from engine.data.formats._common import (
    LIST_FIELDS,
    ItemTable,
    format_error,
    make_raw,
    normalise_text,
    open_text,
    to_float,
)

ITEM_FIELD_NAMES = {"movie_title": "title", "class": "genres", "release_year": "year"}


def atomic_file(folder: Path, suffix: str) -> Path | None:
    """The folder's `*.{suffix}` file: the one named after the folder, else the only one."""
    named = folder / f"{folder.name}.{suffix}"
    if named.exists():
        return named
    found = sorted(folder.glob(f"*.{suffix}"))
    if len(found) > 1:
        raise format_error(
            folder,
            None,
            f"several .{suffix} files ({', '.join(p.name for p in found)}); name the one to use {folder.name}.{suffix}",
        )
    return found[0] if found else None


def _rows(path: Path) -> Iterator[Any]:
    """Yield the parsed header [(field, type)] first, then (line number, values) per data line."""
    with open_text(path) as fh:
        header_line = fh.readline().rstrip("\r\n")
        header: list[tuple[str, str]] = []
        for column in header_line.split("\t"):
            field, sep, kind = column.partition(":")
            if not sep or not field:
                raise format_error(path, 1, f"header column {column!r} is not 'field:type'")
            header.append((field, kind))
        yield header
        for line_no, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            values = line.split("\t")
            if len(values) != len(header):
                raise format_error(path, line_no, f"expected {len(header)} fields, got {len(values)}")
            yield line_no, values


def load_recbole(folder: Path, name: str) -> RawInteractions:
    inter_path = atomic_file(folder, "inter")
    if inter_path is None:
        raise format_error(folder, None, "no .inter file")
    rows = _rows(inter_path)
    fields = [f for f, _ in next(rows)]
    for required in ("user_id", "item_id"):
        if required not in fields:
            raise format_error(inter_path, 1, f"header lacks {required}")
    u_col, i_col = fields.index("user_id"), fields.index("item_id")
    r_col = fields.index("rating") if "rating" in fields else None
    t_col = fields.index("timestamp") if "timestamp" in fields else None
    users: list[str] = []
    items: list[str] = []
    timestamps: list[float] = []
    ratings: list[float] | None = [] if r_col is not None else None
    for position, (line, values) in enumerate(rows):
        users.append(values[u_col])
        items.append(values[i_col])
        # Without a timestamp column the file order is the time order.
        timestamps.append(to_float(values[t_col], inter_path, line, "timestamp") if t_col is not None else position)
        if ratings is not None:
            ratings.append(to_float(values[r_col], inter_path, line, "rating"))

    item_text: dict[str, dict[str, Any]] = {}
    item_path = atomic_file(folder, "item")
    if item_path is not None:
        item_rows = _rows(item_path)
        header = next(item_rows)
        names = [f for f, _ in header]
        if "item_id" not in names:
            raise format_error(item_path, 1, "header lacks item_id")
        id_col = names.index("item_id")
        keys = [ITEM_FIELD_NAMES.get(f, f) for f in names]
        table = ItemTable(item_path)
        for line, values in item_rows:
            text: dict[str, Any] = {}
            for col, ((_, kind), key, value) in enumerate(zip(header, keys, values)):
                if col == id_col:
                    continue
                # token_seq is space-separated; only list fields are split, titles stay one string.
                text[key] = value.split() if key in LIST_FIELDS and kind.endswith("_seq") else value
            table.add(values[id_col], normalise_text(text), line)
        item_text = dict(table)
    return make_raw(name, users, items, timestamps, ratings, item_text, folder)


def _input_files(folder: Path) -> list[Path]:
    return [p for p in (atomic_file(folder, "inter"), atomic_file(folder, "item")) if p is not None]


ATOMIC = FormatSpec(load_recbole, _input_files, lambda folder: next(iter(sorted(folder.glob("*.inter"))), None))
