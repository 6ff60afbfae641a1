"""Cosine scores with a temperature (UniSRec's fine-tuning): score = <h/|h|, v/|v|> / τ for a sequence state h and
an item vector v, for any registered backbone, in training (every loss) and in evaluation alike.

`cosine_backbone(cls)` is the backbone class `cls` with its outputs L2-normalised and divided by τ and its output
item vectors L2-normalised; the inputs (the item vectors the backbone reads) are unchanged, as in UniSRec. It adds
no parameters or buffers, so its state-dict names are the backbone's own (checkpoints and reloads keep them).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from engine.models.base import SequentialBackbone


class CosineScores:
    """Mixin placed before a SequentialBackbone subclass; `temperature` is set after construction."""

    temperature: float = 1.0

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        # last_hidden (the base's and BERT4Rec's) goes through forward, so evaluation is normalised here too
        return F.normalize(super().forward(seq), dim=-1) / self.temperature

    def item_table(self) -> torch.Tensor:
        return F.normalize(super().item_table(), dim=-1)  # the padding row stays zero

    def item_rows(self, items: torch.Tensor) -> torch.Tensor:
        return F.normalize(super().item_rows(items), dim=-1)


@functools.cache
def cosine_backbone(backbone: type[SequentialBackbone]) -> type[SequentialBackbone]:
    """`backbone` scoring by temperature-scaled cosine similarity (one class per backbone, made once)."""
    return type(f"Cosine{backbone.__name__}", (CosineScores, backbone), {"__module__": __name__})


def with_cosine_scores(model: SequentialBackbone, temperature: float) -> SequentialBackbone:
    """`model`, built as usual, turned into its cosine-scoring class (same modules, same state-dict names)."""
    if not temperature > 0:
        raise ValueError(f"cosine scores: the temperature must be positive, got {temperature}")
    model.__class__ = cosine_backbone(type(model))
    model.temperature = float(temperature)
    return model
