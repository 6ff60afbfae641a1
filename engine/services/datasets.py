"""Dataset use cases: the known datasets and where each is, loading one, its statistics, downloading one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import DataConfig
from engine.events import EventSink

if TYPE_CHECKING:
    from engine.data.dataset import SequenceDataset


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    format: str
    description: str
    location: Path | None  # None: not found under the data root (`kirec data download NAME`)


def dataset_names() -> list[str]:
    from engine.data.registry import list_datasets

    return [spec.name for spec in list_datasets()]


def list_datasets(data_root: str | None) -> list[DatasetEntry]:
    from engine.data import DataError
    from engine.data.registry import list_datasets as specs
    from engine.data.root import find_dataset

    entries = []
    for spec in specs():
        try:
            location = find_dataset(spec.name, data_root)[1]
        except DataError:
            location = None
        entries.append(DatasetEntry(spec.name, spec.format, spec.description, location))
    return entries


def load(
    data: DataConfig, cwd: Path | None = None, on_event: EventSink | None = None, cache_dir: Path | None = None
) -> "SequenceDataset":
    """The dataset preprocessed as `data` asks, from the preprocessing cache (`cache_dir`, a workspace's
    `dataset_cache`) when nothing changed; a relative dataset path or data root is inside `cwd`."""
    from engine.data.preprocess import load_dataset

    return load_dataset(data, cwd=cwd, on_event=on_event, cache_dir=cache_dir)


def statistics(
    data: DataConfig, cwd: Path | None = None, on_event: EventSink | None = None, cache_dir: Path | None = None
) -> dict[str, Any]:
    from engine.data.stats import dataset_stats

    return dataset_stats(load(data, cwd, on_event, cache_dir))


def download(name: str, root: Path, on_event: EventSink | None = None) -> Path:
    from engine.data.download import download_dataset

    return download_dataset(name, root, on_event=on_event)
