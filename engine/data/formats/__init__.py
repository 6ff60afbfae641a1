"""Dataset formats: how each layout is recognised, which files it reads, and its loader.

Every loader returns `RawInteractions`; bad input raises `DataFormatError` naming the file and line.
The generic bring-your-own format is documented in `engine.data.formats.generic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from engine import registry
from engine.data.dataset import RawInteractions
from engine.data.errors import DataError
from engine.data.formats import amazon, generic, recbole


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


# The files each format's loader reads (the registry, engine.registry, names the formats, their descriptions and
# loaders, in detection order: for a folder that is not in the dataset registry, the first format whose input
# files include its interactions file wins).
_INPUT_FILES: Mapping[str, Callable[[Path], list[Path]]] = MappingProxyType(
    {
        "movielens-csv": _existing("ratings.csv", "movies.csv", "tags.csv"),
        "movielens-dat": _existing("ratings.dat", "movies.dat"),
        "movielens-100k": _existing("u.data", "u.item", "u.genre"),
        "recbole-atomic": _recbole_files,
        "amazon-sequence": _existing("user_sequence.txt", "items.jsonl"),
        "amazon-raw": _amazon_raw_files,
        "generic": _generic_files,
    }
)

FORMATS: Mapping[str, Format] = MappingProxyType(
    {e.name: Format(e.name, e.help, _INPUT_FILES[e.name], e.load()) for e in registry.entries("dataset_format")}
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
