"""The extraction driver: items → prompts → backend → validated attributes → cache, with progress and resume.

Items whose text was answered before (same model fingerprint, prompt hash and text) come from the cache; the rest
go to the backend in batches, and each batch is committed before the next starts. A stop request or a crash
therefore loses at most one batch, and the next call continues where this one stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from engine.data.dataset import SequenceDataset
from engine.events import EventSink, Status, ignore_events
from engine.extraction.backends.base import ExtractionBackend
from engine.extraction.cache import STATUS_FAILED, STATUS_OK, ExtractionCache, ExtractionRecord, item_text_hash
from engine.extraction.prompts import Prompt, dataset_fields, validate_prompt
from engine.extraction.schema import OutputError, parse_json_object

RETRY_NOTE = "\n\n(Your previous answer was invalid: {error}. Answer with one JSON object only.)"


@dataclass(frozen=True)
class ExtractionProgress:
    """Progress-bar data, emitted after every batch (a candidate for engine.events)."""

    done: int  # items settled in this call, cached ones included
    total: int
    extracted: int  # answered by the LLM in this call
    from_cache: int
    failed: int
    items_per_second: float  # LLM items per second of LLM time
    eta_seconds: float | None


@dataclass
class ExtractionFailure:
    item: int
    item_id: str
    error: str
    raw_output: str
    attempts: int


@dataclass
class ExtractionReport:
    total: int
    extracted: int = 0  # newly answered (ok) in this call
    from_cache: int = 0  # ok answers reused from the cache
    failed: int = 0  # items without valid attributes (new failures and cached ones)
    seconds: float = 0.0
    interrupted: bool = False
    model: str = ""
    prompt_hash: str = ""
    failures: list[ExtractionFailure] = field(default_factory=list)

    @property
    def items_per_second(self) -> float:
        attempted = self.extracted + sum(1 for f in self.failures if f.attempts > 0)
        return attempted / self.seconds if self.seconds > 0 else 0.0


def extract_items(
    dataset: SequenceDataset,
    prompt: Prompt,
    backend: ExtractionBackend,
    cache: ExtractionCache,
    item_indices: Sequence[int] | None = None,
    on_event: EventSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int = 32,
    max_attempts: int = 2,
    retry_failed: bool = False,
    on_progress: Callable[[ExtractionProgress], None] | None = None,
) -> ExtractionReport:
    """Extract attributes for `item_indices` (default: every item 1..num_items) and store them in `cache`.

    Greedy backends repeat themselves, so a retry re-asks with the validation error appended to the prompt.
    Items that failed in an earlier call stay failed (and are reported) unless `retry_failed`.
    """
    on_event = on_event or ignore_events
    validate_prompt(prompt, dataset_fields(dataset.item_text[1:]))
    indices = list(item_indices) if item_indices is not None else list(range(1, dataset.num_items + 1))
    for i in indices:
        if not 1 <= i <= dataset.num_items:
            raise IndexError(f"item index {i} is outside 1..{dataset.num_items} of dataset '{dataset.name}'")
    model, prompt_hash = backend.fingerprint, prompt.content_hash
    report = ExtractionReport(total=len(indices), model=model, prompt_hash=prompt_hash)

    hashes = {i: item_text_hash(dataset.item_text[i]) for i in indices}
    cached = cache.lookup(model, prompt_hash, hashes.values())
    todo: dict[str, list[int]] = {}  # item hash → items with that text (identical texts are asked once)
    for i in indices:
        hit = cached.get(hashes[i])
        if hit is not None and (hit.ok or not retry_failed):
            if hit.ok:
                report.from_cache += 1
            else:
                report.failed += 1
                report.failures.append(ExtractionFailure(i, dataset.item_ids[i], hit.error or "", hit.raw_output, 0))
        else:
            todo.setdefault(hashes[i], []).append(i)
    queue = list(todo.items())
    on_event(Status(f"extraction: {report.from_cache} cached, {len(queue)} to extract with {model} ({prompt.name})"))

    started = time.perf_counter()
    done_texts = 0
    for start in range(0, len(queue), batch_size):
        if should_stop is not None and should_stop():
            report.interrupted = True
            on_event(Status("extraction stopped: answers so far are cached; run again to continue", "warning"))
            break
        chunk = queue[start : start + batch_size]
        records = _extract_chunk(dataset, prompt, backend, [items[0] for _, items in chunk], max_attempts)
        stored: list[ExtractionRecord] = []
        for (text_hash, items), record in zip(chunk, records):
            for i in items:
                stored.append(ExtractionRecord(dataset.item_ids[i], text_hash, record.attributes, record.raw_output,
                                               record.status, record.attempts, record.error))
                if record.status == STATUS_OK:
                    report.extracted += 1
                else:
                    report.failed += 1
                    report.failures.append(ExtractionFailure(i, dataset.item_ids[i], record.error or "", record.raw_output, record.attempts))
        cache.put_many(model, prompt_hash, prompt.name, stored)
        done_texts += len(chunk)
        report.seconds = time.perf_counter() - started
        _report_progress(report, done_texts, len(queue), on_event, on_progress)
    report.seconds = time.perf_counter() - started
    if report.failed:
        on_event(Status(f"extraction: {report.failed} item(s) without valid attributes (stored with their raw output)", "warning"))
    return report


def _extract_chunk(
    dataset: SequenceDataset, prompt: Prompt, backend: ExtractionBackend, items: list[int], max_attempts: int
) -> list[ExtractionRecord]:
    schema = prompt.json_schema()
    base = {i: prompt.render(dataset.item_text[i]) for i in items}
    results: dict[int, ExtractionRecord] = {}
    asking = {i: base[i] for i in items}
    for attempt in range(1, max_attempts + 1):
        answers = backend.generate(list(asking.values()), schema, system=prompt.system)
        retry: dict[int, str] = {}
        for i, raw in zip(asking, answers):
            try:
                attributes = prompt.schema.validate(parse_json_object(raw))
                results[i] = ExtractionRecord(dataset.item_ids[i], "", attributes, raw, STATUS_OK, attempt)
            except OutputError as exc:
                results[i] = ExtractionRecord(dataset.item_ids[i], "", None, raw, STATUS_FAILED, attempt, str(exc))
                retry[i] = base[i] + RETRY_NOTE.format(error=str(exc)[:120])
        if not retry:
            break
        asking = retry
    return [results[i] for i in items]


def _report_progress(
    report: ExtractionReport, done: int, total: int, on_event: EventSink,
    on_progress: Callable[[ExtractionProgress], None] | None,
) -> None:
    rate = done / report.seconds if report.seconds > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else None
    eta_text = f", ETA {_duration(eta)}" if eta is not None and done < total else ""
    on_event(Status(f"extracting {done}/{total} · {rate:.2f} items/s{eta_text} · {report.failed} failed"))
    if on_progress is not None:
        on_progress(ExtractionProgress(done + report.from_cache, total + report.from_cache, report.extracted,
                                       report.from_cache, report.failed, rate, eta))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def cached_attributes(
    dataset: SequenceDataset, prompt: Prompt, model_fingerprint: str, cache: ExtractionCache,
    item_indices: Sequence[int] | None = None,
) -> dict[int, dict[str, Any]]:
    """Valid attributes per item index, from the cache only (items without an ok answer are absent)."""
    indices = list(item_indices) if item_indices is not None else list(range(1, dataset.num_items + 1))
    hashes = {i: item_text_hash(dataset.item_text[i]) for i in indices}
    found = cache.lookup(model_fingerprint, prompt.content_hash, hashes.values())
    return {i: found[h].attributes for i, h in hashes.items() if h in found and found[h].ok and found[h].attributes is not None}
