"""Builds a backbone by name around a (pluggable) item representation."""

from __future__ import annotations

from engine.choices import BACKBONE_CHOICES
from engine.config import ConfigError, ModelConfig
from engine.models.base import IdEmbedding, ItemRepresentation, SequentialBackbone
from engine.models.bert4rec import BERT4Rec
from engine.models.gru4rec import GRU4Rec
from engine.models.sasrec import SASRec

BACKBONES: dict[str, type[SequentialBackbone]] = {"sasrec": SASRec, "gru4rec": GRU4Rec, "bert4rec": BERT4Rec}
assert tuple(BACKBONES) == BACKBONE_CHOICES, "engine.choices.BACKBONE_CHOICES must list every backbone"


def build_model(cfg: ModelConfig, num_items: int, items: ItemRepresentation | None = None) -> SequentialBackbone:
    """`items` defaults to a plain ID table; knowledge injection passes a fused representation instead."""
    backbone = BACKBONES.get(cfg.backbone.lower())
    if backbone is None:
        raise ConfigError(f"model.backbone: unknown backbone {cfg.backbone!r}; expected one of {', '.join(BACKBONES)}")
    if items is None:
        items = IdEmbedding(num_items, cfg.hidden_size)
    elif items.num_items != num_items:
        raise ValueError(f"items: representation has {items.num_items} items, the dataset {num_items}")
    return backbone(items, cfg)
