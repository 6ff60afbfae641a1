"""How good are the LLM's answers? Per-field figures and warnings, computed after every extraction.

A small model fails quietly: the answers are valid JSON, but one field says "face" for every product, or another is
the item's title copied (whole, or cut at the schema's length limit). Nothing downstream notices; the embeddings are
then the title's, or the same vector for every item. This module measures that from the answers themselves: per
field, how many distinct answers, the share of the most common one, the share copied from the title, the empty
ones, and the items without a valid answer, and turns the bad cases into warnings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from engine.events import EventSink, Status
from engine.extraction.entities import unescape_entities

COLLAPSE_SHARE = 0.8  # one value for this share of the answers: the field tells items apart no more
COLLAPSE_MIN_ANSWERS = 20  # fewer answers can agree by chance (ten comedies may all be "funny")
COPY_SHARE = 0.5  # the field is mostly the title again: it adds nothing the raw text lacks
COPY_MIN_ANSWERS = 5  # copying a title verbatim is no coincidence, so a few answers are enough to tell
EMPTY_SHARE = 0.5
FAILED_SHARE = 0.2
CUT_TITLE_MIN_CHARS = 15  # an answer this long that starts the title is the title cut at the length limit
TITLE_FIELDS = ("title", "name")  # the field an answer may be copied from, first present wins
VALUE_SHOWN_CHARS = 40


def normalise(text: Any) -> str:
    """Case, entities and runs of whitespace do not make an answer different."""
    return " ".join(unescape_entities(str(text)).casefold().split())


def title_of(item_text: Mapping[str, Any]) -> str:
    for name in TITLE_FIELDS:
        value = item_text.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def is_title_copy(answer: str, title: str) -> bool:
    """The answer is the title (normalised), or the title cut short (a prefix of at least CUT_TITLE_MIN_CHARS)."""
    answer, title = normalise(answer), normalise(title)
    if not answer or not title:
        return False
    return answer == title or (len(answer) >= CUT_TITLE_MIN_CHARS and title.startswith(answer))


@dataclass(frozen=True)
class FieldQuality:
    name: str
    answered: int  # valid answers with a non-empty value for this field
    empty: int  # valid answers whose value is empty ("" or [])
    distinct: int  # distinct non-empty answers (a list answer counts as one answer)
    distinct_values: int  # distinct values inside the answers (for list fields, each list element counts)
    top_value: str  # the most common answer ("" when none)
    top_count: int
    title_copies: int  # answers copied from the item's title (for a list: any element is such a copy)

    @property
    def top_share(self) -> float:
        return self.top_count / self.answered if self.answered else 0.0

    @property
    def title_copy_share(self) -> float:
        return self.title_copies / self.answered if self.answered else 0.0

    def warnings(self) -> list[str]:
        out = []
        if self.answered >= COLLAPSE_MIN_ANSWERS and self.top_share >= COLLAPSE_SHARE:
            out.append(
                f"'{self.name}' has collapsed to one value: {_shown(self.top_value)!r} in {self.top_share:.0%} "
                f"of {self.answered} answers ({self.distinct} distinct)"
            )
        if self.answered >= COPY_MIN_ANSWERS and self.title_copy_share >= COPY_SHARE:
            out.append(
                f"'{self.name}' is a copy of the title in {self.title_copy_share:.0%} of {self.answered} answers"
            )
        valid = self.answered + self.empty
        if valid >= COLLAPSE_MIN_ANSWERS and self.empty / valid >= EMPTY_SHARE:
            out.append(f"'{self.name}' is empty in {self.empty / valid:.0%} of {valid} answers")
        return out


@dataclass(frozen=True)
class QualityReport:
    prompt: str
    items: int  # items asked about (with text)
    answered: int  # items with a valid answer
    failed: int  # items the LLM answered but never validly (after retries)
    missing: int  # items not answered yet (an interrupted extraction)
    fields: tuple[FieldQuality, ...]

    @property
    def warnings(self) -> list[str]:
        out = [w for f in self.fields for w in f.warnings()]
        if self.items and self.failed / self.items >= FAILED_SHARE:
            out.append(f"{self.failed} of {self.items} items ({self.failed / self.items:.0%}) have no valid answer")
        if self.items and self.answered == 0:
            out.append("no item has a valid answer")
        return out

    def lines(self) -> list[str]:
        """A header line and one line per field, short enough for a status bar or a terminal."""
        head = f"answer quality ({self.prompt}): {self.answered} of {self.items} items answered, {self.failed} failed"
        if self.missing:
            head += f", {self.missing} not yet extracted"
        out = [head]
        for f in self.fields:
            parts = [f"{f.distinct} distinct"]
            if f.distinct_values != f.distinct:
                parts[0] += f" ({f.distinct_values} values)"
            if f.answered:
                parts.append(f"top {_shown(f.top_value)!r} {f.top_share:.0%}")
                parts.append(f"title copies {f.title_copy_share:.0%}")
            parts.append(f"{f.empty} empty")
            out.append(f"  {f.name}: " + ", ".join(parts))
        return out

    def as_info(self) -> dict[str, Any]:
        """Flat scalars for the run record: quality.items, quality.<field>.distinct, ..."""
        info: dict[str, Any] = {
            "quality.items": self.items,
            "quality.answered": self.answered,
            "quality.failed": self.failed,
            "quality.missing": self.missing,
            "quality.warnings": len(self.warnings),
        }
        for f in self.fields:
            key = f"quality.{f.name}"
            info.update(
                {
                    f"{key}.distinct": f.distinct,
                    f"{key}.distinct_values": f.distinct_values,
                    f"{key}.top_value": _shown(f.top_value),
                    f"{key}.top_share": round(f.top_share, 4),
                    f"{key}.title_copy_share": round(f.title_copy_share, 4),
                    f"{key}.empty": f.empty,
                }
            )
        return info

    def emit(self, on_event: EventSink) -> None:
        """The lines as info Status events, then each warning as a warning Status event."""
        for line in self.lines():
            on_event(Status(line))
        for warning in self.warnings:
            on_event(Status(f"answer quality: {warning}", "warning"))


def measure_quality(
    answers: Sequence[Mapping[str, Any] | None],
    titles: Sequence[str],
    fields: Iterable[str] | None = None,
    prompt: str = "",
    missing: int = 0,
) -> QualityReport:
    """The report over `answers` (None: the item has no valid answer), aligned with the items' `titles`.

    `fields` (the prompt's attribute names, in order) makes a field that is never answered show up too; by default
    the fields are the answers' keys in first-seen order. `missing` items are not counted as failures.
    """
    if len(answers) != len(titles):
        raise ValueError(f"{len(answers)} answers for {len(titles)} titles")
    names = list(fields) if fields is not None else list(dict.fromkeys(k for a in answers if a for k in a))
    valid = [(a, t) for a, t in zip(answers, titles) if a is not None]
    per_field = tuple(_field_quality(name, valid) for name in names)
    return QualityReport(
        prompt=prompt,
        items=len(answers) + missing,
        answered=len(valid),
        failed=len(answers) - len(valid),
        missing=missing,
        fields=per_field,
    )


def _field_quality(name: str, valid: list[tuple[Mapping[str, Any], str]]) -> FieldQuality:
    answers: Counter[tuple[str, ...]] = Counter()
    values: set[str] = set()
    shown: dict[tuple[str, ...], str] = {}
    empty = copies = 0
    for attributes, title in valid:
        raw = attributes.get(name)
        parts = [raw] if not isinstance(raw, (list, tuple)) else list(raw)
        parts = [str(p) for p in parts if p is not None and normalise(p)]
        if not parts:
            empty += 1
            continue
        key = tuple(sorted(normalise(p) for p in parts))  # the same list in another order is the same answer
        answers[key] += 1
        shown.setdefault(key, ", ".join(" ".join(p.split()) for p in parts))
        values.update(key)
        copies += any(is_title_copy(p, title) for p in parts)
    top, count = answers.most_common(1)[0] if answers else ((), 0)
    return FieldQuality(
        name=name,
        answered=sum(answers.values()),
        empty=empty,
        distinct=len(answers),
        distinct_values=len(values),
        top_value=shown.get(top, ""),
        top_count=count,
        title_copies=copies,
    )


def extraction_quality(dataset, prompt, model: str, cache, item_indices: Sequence[int] | None = None) -> QualityReport:
    """The report for the cached answers of (model, prompt) about the dataset's items (default: all with text)."""
    from engine.extraction.cache import item_text_hash

    indices = list(item_indices) if item_indices is not None else list(range(1, dataset.num_items + 1))
    indices = [i for i in indices if dataset.item_text[i]]  # textless items are never asked
    hashes = {i: item_text_hash(dataset.item_text[i]) for i in indices}
    found = cache.lookup(model, prompt.content_hash, hashes.values())
    asked = [i for i in indices if hashes[i] in found]
    answers = [found[hashes[i]].attributes if found[hashes[i]].ok else None for i in asked]
    titles = [title_of(dataset.item_text[i]) for i in asked]
    return measure_quality(answers, titles, prompt.schema.names, prompt.name, missing=len(indices) - len(asked))


def _shown(value: str) -> str:
    return value if len(value) <= VALUE_SHOWN_CHARS else value[: VALUE_SHOWN_CHARS - 1] + "…"
