"""The extraction driver: items → prompts → backend → validated attributes → cache, with progress and resume.

Items whose text was answered before (same model fingerprint, prompt hash and text) come from the cache; the rest
go to the backend in rounds of `batch_size` prompts, which it decodes in parallel. Each answer is validated and
committed the moment the backend hands it back, retries included, so a stop request or a crash loses only the answers
still being decoded, and the next call continues where this one stopped. An answer that fails validation is asked
again in the next round, with the error appended; only its final outcome is stored.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from engine.data.dataset import SequenceDataset
from engine.events import EventSink, Status, ignore_events
from engine.extraction.backends.base import Answer, ExtractionBackend, Refusal
from engine.extraction.cache import STATUS_FAILED, STATUS_OK, ExtractionCache, ExtractionRecord, item_text_hash
from engine.extraction.prompts import Prompt, dataset_fields, validate_prompt
from engine.extraction.schema import OutputError, parse_json_object

RETRY_NOTE = "\n\n(Your previous answer was invalid: {error}. Answer with one JSON object only.)"
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class ExtractionProgress:
    """Progress-bar data, emitted after every stored answer (a candidate for engine.events)."""

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
    textless: int = 0  # items with no text at all, never sent to the LLM (not counted in total)
    model: str = ""
    prompt_hash: str = ""
    failures: list[ExtractionFailure] = field(default_factory=list)

    @property
    def items_per_second(self) -> float:
        attempted = self.extracted + sum(1 for f in self.failures if f.attempts > 0)
        return attempted / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Ask:
    """One distinct item text on its way through the backend."""

    text_hash: str
    items: list[int]  # every item with this text: asked once, stored for each
    base_prompt: str
    prompt: str
    attempt: int = 1


class _Stopped(Exception):
    """Raised from the answer callback to end a round early when a stop is requested."""


def extract_items(
    dataset: SequenceDataset,
    prompt: Prompt,
    backend: ExtractionBackend,
    cache: ExtractionCache,
    item_indices: Sequence[int] | None = None,
    on_event: EventSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int | None = None,
    max_attempts: int = 2,
    retry_failed: bool = False,
    on_progress: Callable[[ExtractionProgress], None] | None = None,
) -> ExtractionReport:
    """Extract attributes for `item_indices` (default: every item 1..num_items) and store them in `cache`.

    `batch_size` prompts go to the backend at once (default: the backend's `preferred_batch_size`, else 32).
    Greedy backends repeat themselves, so a retry re-asks with the validation error appended to the prompt.
    Items that failed in an earlier call stay failed (and are reported) unless `retry_failed`. A prompt the backend
    refuses (too long for the model's context) is stored as failed at once, without a retry.
    """
    on_event = on_event or ignore_events
    validate_prompt(prompt, dataset_fields(dataset.item_text[1:]))
    indices = list(item_indices) if item_indices is not None else list(range(1, dataset.num_items + 1))
    for i in indices:
        if not 1 <= i <= dataset.num_items:
            raise IndexError(f"item index {i} is outside 1..{dataset.num_items} of dataset '{dataset.name}'")
    # Items with no text would all render as one empty prompt and share whatever the LLM invents for it: skipped.
    textless = set(dataset.textless_items()).intersection(indices)
    if textless:
        indices = [i for i in indices if i not in textless]
        on_event(Status(f"extraction: {len(textless)} item(s) have no text and are not sent to the LLM", "warning"))
    batch_size = max(1, int(batch_size or getattr(backend, "preferred_batch_size", DEFAULT_BATCH_SIZE)))
    model, prompt_hash = backend.fingerprint, prompt.content_hash
    report = ExtractionReport(total=len(indices), model=model, prompt_hash=prompt_hash, textless=len(textless))

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
    on_event(Status(f"extraction: {report.from_cache} cached, {len(todo)} to extract with {model} ({prompt.name})"))

    schema = prompt.json_schema()
    fresh = iter(todo.items())
    retries: list[_Ask] = []
    started = time.perf_counter()
    done_texts = 0

    def store(ask: _Ask, attributes: dict[str, Any] | None, raw: str, error: str | None) -> None:
        nonlocal done_texts
        status = STATUS_OK if attributes is not None else STATUS_FAILED
        cache.put_many(
            model,
            prompt_hash,
            prompt.name,
            [
                ExtractionRecord(dataset.item_ids[i], ask.text_hash, attributes, raw, status, ask.attempt, error)
                for i in ask.items
            ],
        )
        for i in ask.items:
            if attributes is not None:
                report.extracted += 1
            else:
                report.failed += 1
                report.failures.append(ExtractionFailure(i, dataset.item_ids[i], error or "", raw, ask.attempt))
        done_texts += 1
        report.seconds = time.perf_counter() - started
        if on_progress is not None:
            on_progress(_progress(report, done_texts, len(todo)))

    def settle(ask: _Ask, answer: Answer) -> None:
        if isinstance(answer, Refusal):
            store(ask, None, "", answer.reason)
            return
        try:
            store(ask, prompt.schema.validate(parse_json_object(answer)), answer, None)
        except OutputError as exc:
            if ask.attempt < max_attempts:
                retries.append(
                    _Ask(
                        ask.text_hash,
                        ask.items,
                        ask.base_prompt,
                        ask.base_prompt + RETRY_NOTE.format(error=str(exc)[:120]),
                        ask.attempt + 1,
                    )
                )
            else:
                store(ask, None, answer, str(exc))

    while True:
        if should_stop is not None and should_stop():
            report.interrupted = True
            break
        asks, retries = retries[:batch_size], retries[batch_size:]
        for text_hash, items in fresh:
            text = prompt.render(dataset.item_text[items[0]])
            asks.append(_Ask(text_hash, items, text, text))
            if len(asks) >= batch_size:
                break
        if not asks:
            break
        try:
            _ask_backend(backend, asks, schema, prompt.system, settle, should_stop, prompt.answer_format)
        except _Stopped:
            report.interrupted = True
            break
        report.seconds = time.perf_counter() - started
        _report_status(report, done_texts, len(todo), on_event)
    report.seconds = time.perf_counter() - started
    if report.interrupted:
        on_event(Status("extraction stopped: answers so far are cached; run again to continue", "warning"))
    if report.failed:
        on_event(
            Status(
                f"extraction: {report.failed} item(s) without valid attributes (stored with their raw output)",
                "warning",
            )
        )
    return report


def _ask_backend(
    backend: ExtractionBackend,
    asks: list[_Ask],
    schema: dict[str, Any],
    system: str,
    settle: Callable[[_Ask, Answer], None],
    should_stop: Callable[[], bool] | None,
    answer_format: str = "json",
) -> None:
    """One round: every answer is settled as the backend hands it back (or, for a backend that cannot stream,
    when the round ends), and a stop request ends the round after the answer being settled."""
    settled: set[int] = set()

    def on_answer(index: int, answer: Answer) -> None:
        if index not in settled:
            settled.add(index)
            settle(asks[index], answer)
            if should_stop is not None and should_stop():
                raise _Stopped  # the backend abandons the answers still decoding; they are asked again next time

    prompts = [a.prompt for a in asks]
    options: dict[str, Any] = {}
    if _accepts(backend, "on_answer"):
        options["on_answer"] = on_answer
    if answer_format != "json" and _accepts(backend, "answer_format"):
        options["answer_format"] = answer_format  # a backend without a grammar answers JSON anyway
    answers = backend.generate(prompts, schema, system=system, **options)
    for index, answer in enumerate(answers):  # what a backend did not hand back one by one; all of it is kept
        if index not in settled:
            settled.add(index)
            settle(asks[index], answer)


def _accepts(backend: ExtractionBackend, keyword: str) -> bool:
    """Whether the backend's generate takes `keyword` (test doubles and older backends may not)."""
    try:
        parameters = inspect.signature(backend.generate).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _progress(report: ExtractionReport, done: int, total: int) -> ExtractionProgress:
    rate = done / report.seconds if report.seconds > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else None
    return ExtractionProgress(
        done + report.from_cache,
        total + report.from_cache,
        report.extracted,
        report.from_cache,
        report.failed,
        rate,
        eta,
    )


def _report_status(report: ExtractionReport, done: int, total: int, on_event: EventSink) -> None:
    rate = done / report.seconds if report.seconds > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else None
    eta_text = f", ETA {_duration(eta)}" if eta is not None and done < total else ""
    on_event(Status(f"extracting {done}/{total} · {rate:.2f} items/s{eta_text} · {report.failed} failed"))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def cached_attributes(
    dataset: SequenceDataset,
    prompt: Prompt,
    model_fingerprint: str,
    cache: ExtractionCache,
    item_indices: Sequence[int] | None = None,
) -> dict[int, dict[str, Any]]:
    """Valid attributes per item index, from the cache only (items without an ok answer are absent)."""
    indices = list(item_indices) if item_indices is not None else list(range(1, dataset.num_items + 1))
    hashes = {i: item_text_hash(dataset.item_text[i]) for i in indices}
    found = cache.lookup(model_fingerprint, prompt.content_hash, hashes.values())
    return {
        i: found[h].attributes
        for i, h in hashes.items()
        if h in found and found[h].ok and found[h].attributes is not None
    }
