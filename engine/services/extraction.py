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
    from engine.extraction.extractor import ExtractionProgress
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


def duration_text(seconds: float) -> str:
    """A short duration: "0.8 s", "42 s", "3m05s", "1h02m"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_text(progress: "ExtractionProgress") -> str:
    """One line for a live extraction: items done of the total, time per LLM item, the ETA, cache hits and
    failures ("3/5 items answered · 1.2 s per item · ETA 2.4 s · 1 from the cache")."""
    parts = [f"{progress.done}/{progress.total} items answered"]
    if progress.items_per_second > 0:
        parts.append(f"{duration_text(1 / progress.items_per_second)} per item")
    if progress.done < progress.total:
        parts.append(f"ETA {duration_text(progress.eta_seconds)}" if progress.eta_seconds is not None else "ETA —")
    if progress.from_cache:
        parts.append(f"{progress.from_cache} from the cache")
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    return " · ".join(parts)


def finished_text(report: Any) -> str:
    """One line for a finished (or stopped) extraction, from its ExtractionReport."""
    settled = report.extracted + report.from_cache + report.failed
    parts = [f"{settled}/{report.total} items answered" + (" (stopped)" if report.interrupted else "")]
    if report.items_per_second > 0:  # items the LLM was asked in this call
        parts.append(f"{duration_text(report.seconds)} ({duration_text(1 / report.items_per_second)} per item)")
    if report.from_cache:
        parts.append(f"{report.from_cache} from the cache")
    if report.failed:
        parts.append(f"{report.failed} failed")
    return " · ".join(parts)
