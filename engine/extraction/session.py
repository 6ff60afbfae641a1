"""The one extraction sequence every caller uses (a run's knowledge, `kirec extract`, the Prompts screen):
open the cache, import the project's shipped answers for this model and prompt, extract what is missing,
read the answers back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from engine.events import EventSink, Status, ignore_events
from engine.extraction.backends.base import ExtractionBackend
from engine.extraction.cache import ExtractionCache
from engine.extraction.extractor import ExtractionReport, cached_attributes, extract_items
from engine.extraction.prompts import Prompt


@dataclass
class ExtractionSession:
    cache: ExtractionCache
    prompt: Prompt
    backend: ExtractionBackend
    imported: int  # shipped answers added to the cache when the session opened

    def extract(self, dataset, **options: Any) -> ExtractionReport:
        """`extract_items` for this prompt and backend (options: item_indices, retry_failed, batch_size,
        on_event, on_progress, should_stop); each answer is committed as it arrives."""
        return extract_items(dataset, self.prompt, self.backend, self.cache, **options)

    def answers(self, dataset, item_indices=None) -> dict[int, dict[str, Any]]:
        """Valid attributes per item index, from the cache (items without an ok answer are absent)."""
        return cached_attributes(dataset, self.prompt, self.backend.fingerprint, self.cache, item_indices)

    def quality(self, dataset, item_indices=None):
        """The answers' quality report (engine.extraction.quality): distinct answers, top-value share, title copies,
        empties and failures per field, with warnings; `.emit(on_event)` says it where the user looks."""
        from engine.extraction.quality import extraction_quality

        return extraction_quality(dataset, self.prompt, self.backend.fingerprint, self.cache, item_indices)

    def export(self, dataset, path: str | Path) -> int:
        """The answers as a shipped-extractions JSONL file; the number written."""
        from engine.extraction.shipped import export_extractions

        return export_extractions(self.cache, dataset, self.prompt, self.backend.fingerprint, path)


@contextlib.contextmanager
def extraction_session(
    prompt: Prompt, backend: ExtractionBackend, cache_path: str | Path, on_event: EventSink = ignore_events
) -> Iterator[ExtractionSession]:
    from engine.extraction.shipped import import_shipped_extractions

    with ExtractionCache(cache_path) as cache:
        imported = import_shipped_extractions(cache, backend.fingerprint, prompt.content_hash)
        if imported:
            on_event(Status(f"extraction: {imported} answers imported from the project's shipped extractions"))
        yield ExtractionSession(cache, prompt, backend, imported)
