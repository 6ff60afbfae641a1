"""What a dataset format module declares, so that adding a format is its module plus its registry line:
its loader, the files that loader reads (their contents key the preprocessing cache) and the file whose presence
says a folder is in this format (detection)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.data.dataset import RawInteractions


@dataclass(frozen=True)
class FormatSpec:
    load: Callable[[Path, str], RawInteractions]  # (folder, dataset name) -> raw interactions
    input_files: Callable[[Path], list[Path]]  # the files the loader reads
    interactions_file: Callable[[Path], Path | None]  # the file that must exist for a folder to be in the format


def existing(*names: str) -> Callable[[Path], list[Path]]:
    """Those of `names` that exist in the folder."""
    return lambda folder: [folder / n for n in names if (folder / n).exists()]


def present(name: str) -> Callable[[Path], Path | None]:
    """The folder's `name`, if it exists."""
    return lambda folder: folder / name if (folder / name).exists() else None
