"""What text is embedded for each item: the LLM-extracted attributes, the item's own raw text, or both.

Pure functions over the dicts the data and extraction stages produce. Both renderings share one format,
"name: value; name: v1, v2", so an embedding model sees attributes and raw fields the same way. HTML entities
("L&#39;Oreal") are unescaped here as on the prompt side: the encoder should see the characters, not escape codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from engine.choices import EMBED_TEXT_CHOICES
from engine.config import ConfigError
from engine.extraction.entities import unescape_entities

# Raw fields that describe an item best come first (encoders truncate long inputs at the end);
# any other field follows in alphabetical order. `year` is left out: MovieLens titles already carry it.
RAW_FIELD_ORDER = ("title", "brand", "genres", "categories", "tags", "description", "price")
RAW_FIELDS_SKIPPED = frozenset({"id", "item_id", "asin", "year"})
MAX_LIST_VALUES = 10  # MovieLens tag lists run into the hundreds; a few are enough to characterise an item


@dataclass(frozen=True)
class ItemTexts:
    """Texts for items 1..num_items (index 0 of `texts` is item 1) and how they were obtained."""

    texts: list[str]
    mode: str
    fell_back_to_raw: int  # items with no (non-empty) attributes, embedded from their raw text instead
    empty: int  # items whose text is empty even after the fallback


def render_fields(fields: Mapping[str, Any], max_list_values: int = MAX_LIST_VALUES) -> str:
    """Renders fields as "name: value; name: v1, v2" in key order, leaving out empty values; "_" in names → " ";
    HTML entities in values unescaped."""
    parts = []
    for name, value in fields.items():
        if isinstance(value, (list, tuple)):
            values = [unescape_entities(str(v)).strip() for v in value if v is not None and str(v).strip()]
            value = ", ".join(values[:max_list_values])
        else:
            value = " ".join(unescape_entities(str(value)).split()) if value is not None else ""
        if value:
            parts.append(f"{str(name).replace('_', ' ')}: {value}")
    return "; ".join(parts)


def render_raw_text(item_text: Mapping[str, Any]) -> str:
    """The item's own fields ("title: …; genres: …; brand: …"), best-describing fields first."""
    ordered = {k: item_text[k] for k in RAW_FIELD_ORDER if k in item_text}
    ordered.update({k: item_text[k] for k in sorted(item_text) if k not in ordered and k not in RAW_FIELDS_SKIPPED})
    return render_fields(ordered)


def render_attribute_text(attributes: Mapping[str, Any] | None) -> str:
    """Extracted attributes in the order the prompt declared them; "" when there are none."""
    return render_fields(attributes) if attributes else ""


def item_texts(
    item_text: Sequence[Mapping[str, Any]],
    attributes: Sequence[Mapping[str, Any] | None] | None,
    mode: str = "attributes",
) -> ItemTexts:
    """Texts for items 1..n from `item_text` (aligned with item indices, [0] = padding, as in SequenceDataset).

    `attributes`, when given, is aligned the same way ([0] ignored). In "attributes" mode an item without
    attributes falls back to its raw text; "both" joins attributes and raw text with " | ".
    """
    if mode not in EMBED_TEXT_CHOICES:
        raise ConfigError(f"knowledge.embed_text: '{mode}' is not one of {', '.join(EMBED_TEXT_CHOICES)}")
    if attributes is not None and len(attributes) != len(item_text):
        raise ValueError(
            f"attributes: {len(attributes)} entries for {len(item_text)} item rows (both include the padding row 0)"
        )
    texts: list[str] = []
    fell_back = 0
    for index in range(1, len(item_text)):
        raw = render_raw_text(item_text[index] or {})
        attr = render_attribute_text(attributes[index]) if attributes is not None else ""
        if mode == "raw":
            text = raw
        elif not attr:
            fell_back += 1
            text = raw
        elif mode == "both":
            text = f"{attr} | {raw}" if raw else attr
        else:
            text = attr
        texts.append(text)
    if mode == "raw":
        fell_back = 0  # nothing to fall back from
    return ItemTexts(texts=texts, mode=mode, fell_back_to_raw=fell_back, empty=sum(1 for t in texts if not t))
