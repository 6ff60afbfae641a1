"""Extraction use cases: the LLM backend a config names, and extraction through the cache (the project's
shipped answers imported first), the same sequence a run's knowledge uses."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from engine.config import RunConfig
from engine.events import EventSink, ignore_events

if TYPE_CHECKING:
    from engine.data.dataset import SequenceDataset
    from engine.extraction.prompts import Prompt
    from engine.extraction.session import ExtractionSession


def backend(cfg: RunConfig) -> Any:
    """The extraction backend of `cfg.knowledge` (close it when done)."""
    from engine.knowledge import extraction_backend

    return extraction_backend(cfg)


def prompt_for(cfg: RunConfig, dataset: "SequenceDataset") -> "Prompt":
    """The prompt a run of `cfg` uses on `dataset` (the configured one, or the dataset's default), validated."""
    from engine.knowledge import resolve_prompt

    return resolve_prompt(cfg, dataset)


@contextlib.contextmanager
def session(
    prompt: "Prompt", llm: Any, cache_path: Path, on_event: EventSink = ignore_events
) -> Iterator["ExtractionSession"]:
    """The extraction cache at `cache_path` (a workspace's `extraction_cache`) open for `prompt` and the backend
    `llm`, with the shipped answers imported: `.extract(dataset, ...)`, `.answers(dataset, items)`,
    `.export(dataset, path)`."""
    from engine.extraction.session import extraction_session

    with extraction_session(prompt, llm, cache_path, on_event) as opened:
        yield opened


def item_histories(cache_path: Path, item_ids: list[str]) -> dict[str, list]:
    """`item_history` for several items, the cache opened once."""
    from engine.extraction.cache import ExtractionCache

    if not Path(cache_path).exists():
        return {item_id: [] for item_id in item_ids}
    with ExtractionCache(cache_path) as cache:
        return {item_id: cache.item_history(item_id) for item_id in item_ids}


def item_history(cache_path: Path, item_id: str, item_hash: str | None = None) -> list:
    """Every cached answer for one item, across prompt versions and models, newest first; with `item_hash`,
    only those about that very text (raw ids repeat across datasets)."""
    from engine.extraction.cache import ExtractionCache

    if not Path(cache_path).exists():
        return []
    with ExtractionCache(cache_path) as cache:
        return cache.item_history(item_id, item_hash)
