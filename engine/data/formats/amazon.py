"""Amazon reviews 2014 (McAuley lab), in either of the two layouts the literature uses.

- Sequences: `user_sequence.txt`, one line per user, `userID item1 item2 ...` in time order (no timestamps, so the
  position is the time), plus `items.jsonl` (`asin`, `title`, `brand`, `categories`).
- Raw: `reviews_<Category>_5.json.gz` (JSON lines: `reviewerID`, `asin`, `overall`, `unixReviewTime`) plus
  `meta_<Category>.json.gz`, whose lines are Python dict literals (single quotes): parsed with `ast.literal_eval`,
  never `eval`. Its `categories` is a list of paths; the longest (most specific) one is kept.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from engine.data.dataset import RawInteractions
from engine.data.formats.spec import FormatSpec, existing, present
from engine.data.formats._common import format_error, make_raw, normalise_text, open_text, read_items_jsonl, to_float

META_TEXT_FIELDS = ("title", "brand", "categories", "description", "price")
# The asin of a meta line, found without parsing it: the file lists every product of the category
# (about 259,000 for Beauty) and literal_eval of the ones no review mentions would dominate the load time.
_META_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")


def load_amazon_sequence(folder: Path, name: str) -> RawInteractions:
    path = folder / "user_sequence.txt"
    users: list[str] = []
    items: list[str] = []
    positions: list[float] = []
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise format_error(path, line_no, "expected a user id followed by at least one item")
            user, sequence = tokens[0], tokens[1:]
            users.extend([user] * len(sequence))
            items.extend(sequence)
            positions.extend(range(len(sequence)))
    items_path = folder / "items.jsonl"
    item_text = read_items_jsonl(items_path) if items_path.exists() else {}
    return make_raw(name, users, items, positions, None, item_text, folder)


def raw_files(folder: Path) -> tuple[Path | None, Path | None]:
    """The category's 5-core review file (any `reviews_*.json.gz` if no 5-core one) and its meta file."""
    reviews = sorted(folder.glob("reviews_*_5.json.gz")) or sorted(folder.glob("reviews_*.json.gz"))
    metas = sorted(folder.glob("meta_*.json.gz"))
    return (reviews[0] if reviews else None), (metas[0] if metas else None)


def _longest_path(categories: Any) -> list[str]:
    if isinstance(categories, list) and categories and all(isinstance(c, list) for c in categories):
        return max(categories, key=len)  # max keeps the first of equally long paths
    return categories if isinstance(categories, list) else [categories]


def _parse_review(line: str, path: Path, line_no: int) -> dict[str, Any]:
    try:
        review = json.loads(line)
    except json.JSONDecodeError:
        try:  # some 2014 dumps are "loose JSON" (Python literals) too
            review = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise format_error(path, line_no, "not a JSON object") from None
    if not isinstance(review, dict):
        raise format_error(path, line_no, "not a JSON object")
    return review


def read_meta(path: Path, wanted: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Text fields of the products in `wanted` (all if None); each line is a Python dict literal."""
    items: dict[str, dict[str, Any]] = {}
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if wanted is not None:
                match = _META_ASIN.search(line)
                if match and match.group(1) not in wanted:
                    continue
            try:
                product = ast.literal_eval(line.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise format_error(path, line_no, "not a Python dict literal") from None
            if not isinstance(product, dict):
                raise format_error(path, line_no, "not a Python dict literal")
            if not product.get("asin"):
                raise format_error(path, line_no, "no 'asin'")
            text = {key: product.get(key) for key in META_TEXT_FIELDS}
            if text["categories"] is not None:
                text["categories"] = _longest_path(text["categories"])
            items[str(product["asin"])] = normalise_text(text)
    return items


def load_amazon_raw(folder: Path, name: str) -> RawInteractions:
    reviews_path, meta_path = raw_files(folder)
    if reviews_path is None:
        raise format_error(folder, None, "no reviews_*.json.gz file")
    users: list[str] = []
    items: list[str] = []
    timestamps: list[float] = []
    ratings: list[float] = []
    with open_text(reviews_path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            review = _parse_review(line, reviews_path, line_no)
            missing = [k for k in ("reviewerID", "asin", "unixReviewTime", "overall") if review.get(k) in (None, "")]
            if missing:
                raise format_error(reviews_path, line_no, f"missing {', '.join(missing)}")
            users.append(str(review["reviewerID"]))
            items.append(str(review["asin"]))
            timestamps.append(to_float(str(review["unixReviewTime"]), reviews_path, line_no, "unixReviewTime"))
            ratings.append(to_float(str(review["overall"]), reviews_path, line_no, "overall"))
    item_text = read_meta(meta_path, set(items)) if meta_path is not None else {}
    return make_raw(name, users, items, timestamps, ratings, item_text, folder)


SEQUENCE = FormatSpec(load_amazon_sequence, existing("user_sequence.txt", "items.jsonl"), present("user_sequence.txt"))
RAW = FormatSpec(
    load_amazon_raw, lambda folder: [p for p in raw_files(folder) if p is not None], lambda folder: raw_files(folder)[0]
)
