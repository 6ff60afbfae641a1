"""kirec's generic dataset format: bring your own data as a folder with two files.

`interactions.csv` (comma-separated) or `interactions.tsv` (tab-separated), with a header row:

| column | required | meaning |
| --- | --- | --- |
| `user` (or `user_id`) | yes | user id, any string |
| `item` (or `item_id`) | yes | item id, any string |
| `timestamp` | no | a number (e.g. Unix seconds) or an ISO 8601 date/time; without it, the row order is the time order |
| `rating` | no | a number; only used when `rating_threshold` is set |

Other columns are ignored. Rows of one user need not be contiguous; equal timestamps keep their file order.

`items.jsonl` (optional): one JSON object per line with the item id under `id` (or `item_id`) and any text
fields, e.g. `{"id": "42", "title": "...", "brand": "...", "categories": ["...", "..."], "description": "..."}`.
`genres`, `tags` and `categories` are lists of strings; every other field is one string. The LLM stage reads
these fields; items without an entry are known by their id only.

Put the folder under a data root (`data/<name>/`) and use `--dataset <name>`, or pass the folder's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.data.dataset import RawInteractions
from engine.data.formats.spec import FormatSpec, existing
from engine.data.formats._common import (
    csv_rows,
    field_count_error,
    format_error,
    make_raw,
    open_text,
    read_items_jsonl,
    to_float,
    to_timestamp,
)

COLUMN_ALIASES = {"user": ("user", "user_id"), "item": ("item", "item_id")}


def interactions_file(folder: Path) -> Path | None:
    for name in ("interactions.csv", "interactions.tsv"):
        if (folder / name).exists():
            return folder / name
    return None


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def load_generic(folder: Path, name: str) -> RawInteractions:
    path = interactions_file(folder)
    if path is None:
        raise format_error(folder, None, "no interactions.csv or interactions.tsv")
    users: list[str] = []
    items: list[str] = []
    timestamps: list[float] = []
    ratings: list[float] | None = None
    with open_text(path) as fh:
        rows = csv_rows(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
        header = [h.strip() for h in next(rows, (1, []))[1]]
        u_col = _column(header, COLUMN_ALIASES["user"])
        i_col = _column(header, COLUMN_ALIASES["item"])
        if u_col is None or i_col is None:
            raise format_error(path, 1, f"header needs 'user' and 'item' (or user_id, item_id), found {header}")
        t_col = _column(header, ("timestamp",))
        r_col = _column(header, ("rating",))
        if r_col is not None:
            ratings = []
        for position, (line, row) in enumerate(rows):
            if not row:
                continue
            if len(row) != len(header):
                raise field_count_error(path, line, len(header), row)
            user, item = row[u_col].strip(), row[i_col].strip()
            if not user or not item:
                raise format_error(path, line, "empty user or item")
            users.append(user)
            items.append(item)
            timestamps.append(to_timestamp(row[t_col], path, line) if t_col is not None else float(position))
            if ratings is not None:
                ratings.append(to_float(row[r_col], path, line, "rating"))
    items_path = folder / "items.jsonl"
    item_text: dict[str, dict[str, Any]] = (
        read_items_jsonl(items_path, ("id", "item_id")) if items_path.exists() else {}
    )
    return make_raw(name, users, items, timestamps, ratings, item_text, folder)


def _input_files(folder: Path) -> list[Path]:
    found = interactions_file(folder)
    return ([found] if found else []) + existing("items.jsonl")(folder)


GENERIC = FormatSpec(load_generic, _input_files, interactions_file)
