"""Dataset formats: how each layout is recognised, which files it reads, and its loader.

Every loader returns `RawInteractions`; bad input raises `DataFormatError` naming the file and line.
The generic bring-your-own format is documented in `engine.data.formats.generic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from engine.data.dataset import RawInteractions
from engine.data.errors import DataError
from engine.data.formats import amazon, generic, movielens, recbole


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    input_files: Callable[[Path], list[Path]]  # the files the loader reads (their contents key the cache)
    load: Callable[[Path, str], RawInteractions]


def _existing(*names: str) -> Callable[[Path], list[Path]]:
    return lambda folder: [folder / n for n in names if (folder / n).exists()]


def _recbole_files(folder: Path) -> list[Path]:
    return [p for p in (recbole.atomic_file(folder, "inter"), recbole.atomic_file(folder, "item")) if p is not None]


def _amazon_raw_files(folder: Path) -> list[Path]:
    return [p for p in amazon.raw_files(folder) if p is not None]


def _generic_files(folder: Path) -> list[Path]:
    found = generic.interactions_file(folder)
    return ([found] if found else []) + _existing("items.jsonl")(folder)


# Detection order for a folder that is not in the registry: the first format whose input files include its
# interactions file wins.
FORMATS: Mapping[str, Format] = MappingProxyType(
    {
        f.name: f
        for f in (
            Format("movielens-csv", "GroupLens CSV: ratings.csv, movies.csv, tags.csv",
                   _existing("ratings.csv", "movies.csv", "tags.csv"), movielens.load_movielens_csv),
            Format("movielens-dat", "GroupLens ML-1M: ratings.dat, movies.dat ('::'-separated, latin-1)",
                   _existing("ratings.dat", "movies.dat"), movielens.load_movielens_dat),
            Format("movielens-100k", "GroupLens ML-100K: u.data, u.item, u.genre",
                   _existing("u.data", "u.item", "u.genre"), movielens.load_movielens_100k),
            Format("recbole-atomic", "RecBole atomic files: <name>.inter, <name>.item",
                   _recbole_files, recbole.load_recbole),
            Format("amazon-sequence", "Amazon 2014 sequences: user_sequence.txt, items.jsonl",
                   _existing("user_sequence.txt", "items.jsonl"), amazon.load_amazon_sequence),
            Format("amazon-raw", "Amazon 2014 raw: reviews_<Category>_5.json.gz, meta_<Category>.json.gz",
                   _amazon_raw_files, amazon.load_amazon_raw),
            Format("generic", "kirec generic: interactions.csv or .tsv, optional items.jsonl",
                   _generic_files, generic.load_generic),
        )
    }
)

# The file that must exist for a folder to be in each format (the rest are optional).
_INTERACTIONS_FILE: Mapping[str, Callable[[Path], Path | None]] = MappingProxyType(
    {
        "movielens-csv": lambda f: f / "ratings.csv" if (f / "ratings.csv").exists() else None,
        "movielens-dat": lambda f: f / "ratings.dat" if (f / "ratings.dat").exists() else None,
        "movielens-100k": lambda f: f / "u.data" if (f / "u.data").exists() else None,
        "recbole-atomic": lambda f: next(iter(sorted(f.glob("*.inter"))), None),
        "amazon-sequence": lambda f: f / "user_sequence.txt" if (f / "user_sequence.txt").exists() else None,
        "amazon-raw": lambda f: amazon.raw_files(f)[0],
        "generic": generic.interactions_file,
    }
)


def detect_format(folder: Path) -> str | None:
    """The format of a folder, from the files it holds; None if it holds none kirec reads."""
    for name in FORMATS:
        if _INTERACTIONS_FILE[name](folder) is not None:
            return name
    return None


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise DataError(f"unknown dataset format '{name}' (known: {', '.join(FORMATS)})") from None


def input_files(folder: Path, format_name: str) -> list[Path]:
    return get_format(format_name).input_files(folder)


def load_raw(folder: Path, format_name: str, name: str) -> RawInteractions:
    return get_format(format_name).load(folder, name)


__all__ = ["FORMATS", "Format", "detect_format", "get_format", "input_files", "load_raw"]
