"""Builds a backbone by name (a registered one, engine.registry) around a (pluggable) item representation."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from engine import registry
from engine.config import ModelConfig
from engine.models.base import IdEmbedding, ItemRepresentation, SequentialBackbone

# name -> class, every registered backbone (kept for callers that list or pick them directly)
BACKBONES: Mapping[str, type[SequentialBackbone]] = MappingProxyType(
    {name: registry.load("backbone", name) for name in registry.choices("backbone")}
)


def build_model(cfg: ModelConfig, num_items: int, items: ItemRepresentation | None = None) -> SequentialBackbone:
    """`items` defaults to a plain ID table; knowledge injection passes a fused representation instead."""
    backbone = registry.load("backbone", cfg.backbone.lower())  # an unknown name: ConfigError naming model.backbone
    if items is None:
        items = IdEmbedding(num_items, cfg.hidden_size)
    elif items.num_items != num_items:
        raise ValueError(f"items: representation has {items.num_items} items, the dataset {num_items}")
    return backbone(items, cfg)
