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


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    input_files: Callable[[Path], list[Path]]  # the files the loader reads (their contents key the cache)
    load: Callable[[Path, str], RawInteractions]
    interactions_file: Callable[[Path], Path | None]  # present when a folder is in this format


# Each format module declares its FormatSpec (engine.data.formats.spec); the registry names it, with its
# description, in detection order: for a folder outside the dataset registry, the first whose interactions file
# exists wins.
FORMATS: Mapping[str, Format] = MappingProxyType(
    {
        e.name: Format(e.name, e.help, spec.input_files, spec.load, spec.interactions_file)
        for e in registry.entries("dataset_format")
        for spec in (e.load(),)
    }
)


def detect_format(folder: Path) -> str | None:
    """The format of a folder, from the files it holds; None if it holds none kirec reads."""
    for name in FORMATS:
        if FORMATS[name].interactions_file(folder) is not None:
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
