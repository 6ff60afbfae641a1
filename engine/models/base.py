"""Contracts between item representations and sequential backbones.

A backbone never owns an item table directly: it is given an `ItemRepresentation`, so that knowledge
injection (semantic vectors fused with ID embeddings) plugs in without touching SASRec, GRU4Rec or BERT4Rec.
Scores are dot products between a sequence's hidden state and `items.all_items()` (tied input/output tables).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# An extra training-loss term: (inputs [B, L], targets [B, L], hidden [B, L, D] = the backbone's output for the
# inputs) -> a scalar the trainer adds to the run's loss at every step (inside the DDP-wrapped step, so its
# gradients are synchronised like the main loss's). LLM-ESR's self-distillation is one.
ExtraLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class ItemRepresentation(nn.Module):
    """Maps item indices (0 = padding) to vectors of size `dim`."""

    num_items: int  # real items; tables have num_items + 1 rows
    dim: int

    def forward(self, items: torch.Tensor) -> torch.Tensor:  # [...] -> [..., dim]
        raise NotImplementedError

    def all_items(self) -> torch.Tensor:  # [num_items + 1, dim], row 0 = padding
        return self.forward(torch.arange(self.num_items + 1, device=self.device))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def extra_loss_term(self) -> ExtraLoss | None:
        """A term to add to the training loss, or None (the default: nothing is added, nothing is computed)."""
        return None


class IdEmbedding(ItemRepresentation):
    """The plain baseline: one learned vector per item ID."""

    def __init__(self, num_items: int, dim: int):
        super().__init__()
        self.num_items, self.dim = num_items, dim
        self.table = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.table.weight, std=0.02)
        with torch.no_grad():
            self.table.weight[0].zero_()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.table(items)

    def all_items(self) -> torch.Tensor:
        return self.table.weight


class SequentialBackbone(nn.Module):
    """Encodes left-padded item sequences [B, L] (0 = padding) into hidden states [B, L, D].

    `objective` tells the trainer how to build targets: "causal" (predict item t+1 at every position t)
    or "masked" (BERT4Rec: predict masked items from both sides).
    """

    objective: str = "causal"
    items: ItemRepresentation

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def last_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden state [B, D] that scores the next item after each (left-padded) history."""
        return self.forward(seq)[:, -1]

    def item_table(self) -> torch.Tensor:
        return self.items.all_items()

    def item_rows(self, items: torch.Tensor) -> torch.Tensor:
        """The output vectors of some items (the sampled losses' rows of `item_table`, without building it all)."""
        return self.items(items)

    def extra_loss_term(self) -> ExtraLoss | None:
        """A term the trainer adds to the training loss at every step, or None (the default). A method whose
        model needs one overrides this; by default the item representation's own term (if any) is used."""
        return self.items.extra_loss_term()

    def start_epoch(self) -> None:
        """Called by the trainer before each training epoch's first step, in train mode, outside autocast; the
        default does nothing (LLM-ESR's once-an-epoch teachers are encoded here)."""

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores [B, num_items + 1] for every item; column 0 (padding) is meaningless."""
        return self.last_hidden(seq) @ self.item_table().T
