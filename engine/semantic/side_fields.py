"""Structured side information (issue #10's FDSA / CARCA lever): each item's categorical field values, from the
dataset's own fields (brand, categories, genres, year) and/or the LLM's extracted attributes, as one small
vocabulary with its own trained embeddings, mean-pooled per item and added to the method's item vector
(`knowledge.side_fields`).

No language model encodes anything here: a value is a token ("brand=opi", "llm.mood=light"), so two items share a
vector exactly where they share a value. A value seen on fewer than `knowledge.side_min_count` items is left out:
a value of one item only would be a second ID embedding. Free-text and unique fields (title, description) are
never tokens; the semantic table is what reads them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from engine.extraction.entities import unescape_entities
from engine.models.base import ItemRepresentation

RAW_FIELDS_SKIPPED = frozenset({"title", "description", "price", "id", "item_id", "asin"})
MAX_VALUES_PER_FIELD = 10  # as many as the text rendering keeps (MovieLens tag lists run into the hundreds)
NO_VALUE = frozenset({"", "none", "null", "unknown", "n/a", "na", "nan", "-"})
BASE_PREFIX = "base."  # the method's own tensors inside a SideFieldItems' state (checkpoint key items.base.*)
INIT_STD = 0.02  # the ID table's initial scale (engine.models.base.IdEmbedding)


def _tokens(fields: Mapping[str, Any] | None, skipped: frozenset[str] = frozenset()) -> list[str]:
    """ "field=value" tokens of one item, values lower-cased with entities unescaped and whitespace collapsed."""
    out: list[str] = []
    for name, value in (fields or {}).items():
        if name in skipped or value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        kept = 0
        for v in values:
            text = " ".join(unescape_entities(str(v)).split()).lower() if v is not None else ""
            if text in NO_VALUE:
                continue
            out.append(f"{name}={text}")
            kept += 1
            if kept == MAX_VALUES_PER_FIELD:
                break
    return list(dict.fromkeys(out))  # a value repeated within an item counts once


def item_field_values(
    item_text: Sequence[Mapping[str, Any] | None],
    attributes: Sequence[Mapping[str, Any] | None] | None,
    source: str,
) -> list[list[str]]:
    """Tokens per item row ([0] = padding: none) from the raw fields ("raw"), the attributes ("attributes") or
    both. Attribute tokens are prefixed "llm." so that an extracted `genre` never merges with a raw `genres`."""
    if source in ("attributes", "both") and attributes is None:
        raise ValueError(f"side fields '{source}' need the extracted attributes")
    rows: list[list[str]] = [[]]
    for index in range(1, len(item_text)):
        tokens: list[str] = []
        if source in ("raw", "both"):
            tokens += _tokens(item_text[index], RAW_FIELDS_SKIPPED)
        if source in ("attributes", "both"):
            tokens += [f"llm.{t}" for t in _tokens(attributes[index])]
        rows.append(tokens)
    return rows


@dataclass(frozen=True)
class SideVocabulary:
    index: np.ndarray  # [num_items + 1, K] int64: each item's value ids, 0 = none (row 0 = padding)
    values: tuple[str, ...]  # values[i - 1] is the token of value id i
    items_covered: int  # items with at least one kept value

    @property
    def size(self) -> int:
        return len(self.values)

    def info(self) -> dict[str, Any]:
        per_field = Counter(token.split("=", 1)[0] for token in self.values)
        return {
            "side_values": self.size,
            "side_items_covered": self.items_covered,
            "side_values_per_field": dict(sorted(per_field.items())),
        }


def build_vocabulary(tokens_per_item: Sequence[Sequence[str]], min_count: int = 2) -> SideVocabulary:
    """The values seen on at least `min_count` items, in order of first appearance, and each item's ids."""
    counts = Counter(token for tokens in tokens_per_item[1:] for token in set(tokens))
    kept = [
        token
        for token in dict.fromkeys(t for tokens in tokens_per_item[1:] for t in tokens)
        if counts[token] >= min_count
    ]
    ids = {token: i for i, token in enumerate(kept, start=1)}
    per_item = [[ids[t] for t in tokens if t in ids] for tokens in tokens_per_item]
    width = max((len(row) for row in per_item), default=0) or 1
    index = np.zeros((len(tokens_per_item), width), dtype=np.int64)
    for row, value_ids in enumerate(per_item):
        index[row, : len(value_ids)] = value_ids
    index[0] = 0
    return SideVocabulary(index, tuple(kept), sum(1 for row in per_item[1:] if row))


class SideFieldItems(ItemRepresentation):
    """`base` (the method's item vectors) plus the mean of the item's value embeddings; an item without values
    gets `base` alone. Row 0 (padding) stays zero."""

    def __init__(self, base: ItemRepresentation, index: np.ndarray | torch.Tensor, num_values: int, seed: int = 0):
        super().__init__()
        self.base = base
        self.num_items, self.dim = base.num_items, base.dim
        self.register_buffer("side_index", torch.as_tensor(np.asarray(index), dtype=torch.long).clone())
        self.side = nn.EmbeddingBag(num_values + 1, self.dim, mode="mean", padding_idx=0)
        # Its own generator: the global one seeds the backbone, and reusing the ID table's seed would start both
        # tables from the same numbers.
        generator = torch.Generator().manual_seed(1_000_003 * seed + 17)
        with torch.no_grad():
            self.side.weight.copy_(torch.randn(self.side.weight.shape, generator=generator) * INIT_STD)
            self.side.weight[0].zero_()

    def side_vectors(self, items: torch.Tensor) -> torch.Tensor:
        flat = self.side_index[items.reshape(-1)]
        return self.side(flat).reshape(*items.shape, self.dim)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.base(items) + self.side_vectors(items)

    def all_items(self) -> torch.Tensor:
        return self.base.all_items() + self.side(self.side_index)

    def extra_loss_term(self):
        return self.base.extra_loss_term()


def with_side_fields(
    base: ItemRepresentation, vocabulary: SideVocabulary, seed: int = 0
) -> tuple[SideFieldItems, dict[str, Any]]:
    """`base` with the vocabulary's embeddings added, and what the run records about them."""
    items = SideFieldItems(base, vocabulary.index, vocabulary.size, seed)
    return items, {**vocabulary.info(), "side_params": items.side.weight.numel()}


def side_fields_from_checkpoint(base: ItemRepresentation, stored: Mapping[str, torch.Tensor]) -> SideFieldItems:
    """The same module as a finished run's, its vocabulary's shape read from the checkpoint tensors."""
    if "side_index" not in stored or "side.weight" not in stored:
        from engine.training.checkpoint import CheckpointError

        raise CheckpointError("checkpoint: knowledge.side_fields needs items.side_index and items.side.weight")
    return SideFieldItems(base, stored["side_index"].cpu().numpy(), stored["side.weight"].shape[0] - 1)
