"""GroupLens MovieLens files: latest-small CSV, ML-1M `.dat` and ML-100K's own `u.data`/`u.item`.

Titles keep their year ("Toy Story (1995)") and `year` is also a field of its own; `genres` and `tags` are lists.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from engine.data.dataset import RawInteractions
from engine.data.formats.spec import FormatSpec, existing, present
from engine.data.formats._common import (
    ItemTable,
    csv_rows,
    field_count_error,
    format_error,
    make_raw,
    normalise_text,
    open_text,
    to_float,
    year_from_title,
)

MAX_TAGS = 5  # most frequent tags kept per movie: enough to describe it without drowning the prompt
NO_GENRES = "(no genres listed)"
# ML-100K's u.genre, used when that file is absent.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def _movie_text(title: str, genres: list[str]) -> dict[str, Any]:
    return normalise_text({"title": title, "year": year_from_title(title), "genres": genres})


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, {column: value}) for a CSV with a header naming at least `required`."""
    with open_text(path) as fh:
        rows = csv_rows(fh)
        _, header = next(rows, (1, None))
        if header is None:
            raise format_error(path, 1, "empty file, expected a header")
        missing = [c for c in required if c not in header]
        if missing:
            raise format_error(path, 1, f"header lacks {', '.join(missing)} (found {', '.join(header)})")
        width = len(header)
        positions = {c: header.index(c) for c in required}
        for line, row in rows:
            if not row:
                continue
            if len(row) != width:
                raise field_count_error(path, line, width, row)
            yield line, {c: row[i] for c, i in positions.items()}


def _top_tags(path: Path) -> dict[str, list[str]]:
    """Each movie's most frequent tags, counted case-insensitively, in the spelling first seen."""
    counts: dict[str, Counter[str]] = {}
    spelling: dict[tuple[str, str], str] = {}
    for _, row in _csv_rows(path, ("movieId", "tag")):
        tag = " ".join(row["tag"].split())
        if not tag:
            continue
        key = tag.lower()
        counts.setdefault(row["movieId"], Counter())[key] += 1
        spelling.setdefault((row["movieId"], key), tag)
    # Counter.most_common keeps first-insertion order among equal counts, so ties go to the tag seen first.
    return {
        movie: [spelling[(movie, key)] for key, _ in counter.most_common(MAX_TAGS)] for movie, counter in counts.items()
    }


def load_movielens_csv(folder: Path, name: str) -> RawInteractions:
    ratings_path = folder / "ratings.csv"
    users: list[str] = []
    items: list[str] = []
    timestamps: list[float] = []
    ratings: list[float] = []
    for line, row in _csv_rows(ratings_path, ("userId", "movieId", "rating", "timestamp")):
        users.append(row["userId"])
        items.append(row["movieId"])
        ratings.append(to_float(row["rating"], ratings_path, line, "rating"))
        timestamps.append(to_float(row["timestamp"], ratings_path, line, "timestamp"))

    movies_path = folder / "movies.csv"
    item_text = ItemTable(movies_path)
    if movies_path.exists():
        for line, row in _csv_rows(movies_path, ("movieId", "title", "genres")):
            genres = [g for g in row["genres"].split("|") if g and g != NO_GENRES]
            item_text.add(row["movieId"], _movie_text(row["title"].strip(), genres), line)
    tags_path = folder / "tags.csv"
    if tags_path.exists():
        for movie, tags in _top_tags(tags_path).items():
            item_text.setdefault(movie, {})["tags"] = tags
    return make_raw(name, users, items, timestamps, ratings, dict(item_text), folder)


def _dat_rows(path: Path, fields: int) -> Iterator[tuple[int, list[str]]]:
    """ML-1M's `::`-separated latin-1 lines."""
    with open_text(path, encoding="latin-1") as fh:
        for line_no, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("::")
            if len(parts) != fields:
                raise format_error(path, line_no, f"expected {fields} '::'-separated fields, got {len(parts)}")
            yield line_no, parts


def load_movielens_dat(folder: Path, name: str) -> RawInteractions:
    ratings_path = folder / "ratings.dat"
    users: list[str] = []
    items: list[str] = []
    timestamps: list[float] = []
    ratings: list[float] = []
    for line, (user, movie, rating, timestamp) in _dat_rows(ratings_path, 4):
        users.append(user)
        items.append(movie)
        ratings.append(to_float(rating, ratings_path, line, "rating"))
        timestamps.append(to_float(timestamp, ratings_path, line, "timestamp"))
    movies_path = folder / "movies.dat"
    item_text = ItemTable(movies_path)
    if movies_path.exists():
        for line, (movie, title, genres) in _dat_rows(movies_path, 3):
            item_text.add(movie, _movie_text(title.strip(), [g for g in genres.split("|") if g]), line)
    return make_raw(name, users, items, timestamps, ratings, dict(item_text), folder)


def load_movielens_100k(folder: Path, name: str) -> RawInteractions:
    """`u.data`: user, item, rating, timestamp, tab-separated. `u.item`: `|`-separated, 5 fields + 19 genre flags."""
    data_path = folder / "u.data"
    users: list[str] = []
    items: list[str] = []
    timestamps: list[float] = []
    ratings: list[float] = []
    with open_text(data_path, encoding="latin-1") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise format_error(data_path, line_no, f"expected 4 fields, got {len(parts)}")
            users.append(parts[0])
            items.append(parts[1])
            ratings.append(to_float(parts[2], data_path, line_no, "rating"))
            timestamps.append(to_float(parts[3], data_path, line_no, "timestamp"))

    genre_names = list(ML100K_GENRES)
    genre_path = folder / "u.genre"
    if genre_path.exists():
        by_index: dict[int, str] = {}
        with open_text(genre_path, encoding="latin-1") as fh:
            for line_no, line in enumerate(fh, start=1):
                genre, _, index = line.strip().partition("|")
                if not line.strip():
                    continue
                if not index.isdigit():
                    raise format_error(genre_path, line_no, "expected 'genre|index'")
                by_index[int(index)] = genre
        genre_names = [by_index[i] for i in sorted(by_index)]
    item_path = folder / "u.item"
    item_text = ItemTable(item_path)
    if item_path.exists():
        with open_text(item_path, encoding="latin-1") as fh:
            for line_no, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                parts = line.split("|")
                if len(parts) != 5 + len(genre_names):
                    raise format_error(item_path, line_no, f"expected {5 + len(genre_names)} fields, got {len(parts)}")
                flags = parts[5:]
                genres = [g for g, flag in zip(genre_names, flags) if flag == "1" and g != "unknown"]
                text = _movie_text(parts[1].strip(), genres)
                if "year" not in text and parts[2][-4:].isdigit():  # release date "01-Jan-1995"
                    text["year"] = parts[2][-4:]
                item_text.add(parts[0], text, line_no)
    return make_raw(name, users, items, timestamps, ratings, dict(item_text), folder)


CSV = FormatSpec(load_movielens_csv, existing("ratings.csv", "movies.csv", "tags.csv"), present("ratings.csv"))
DAT = FormatSpec(load_movielens_dat, existing("ratings.dat", "movies.dat"), present("ratings.dat"))
ML_100K = FormatSpec(load_movielens_100k, existing("u.data", "u.item", "u.genre"), present("u.data"))
