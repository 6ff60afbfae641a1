"""Builds the item representation a run asks for: plain IDs, or LLM knowledge injected into them.

The knowledge path is prompt → LLM attribute extraction (cached) → text embeddings (cached) → reduction → fusion;
each stage lives in its own package (engine.extraction, engine.semantic) and this module only wires them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.data.dataset import SequenceDataset
from engine.events import EventSink, ignore_events
from engine.models.base import IdEmbedding, ItemRepresentation


def build_items(
    cfg: RunConfig,
    dataset: SequenceDataset,
    cwd: Path,
    on_event: EventSink = ignore_events,
    device: Any = None,
) -> tuple[ItemRepresentation, dict[str, Any]]:
    method = cfg.knowledge.method
    if method == "id":
        return IdEmbedding(dataset.num_items, cfg.model.hidden_size), {}
    raise ValueError(f"knowledge.method: '{method}' is not available yet (choose: id)")
