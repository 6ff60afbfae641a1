"""BERT4Rec (Sun et al., 2019): a bidirectional transformer trained to recover masked items.

The [MASK] vector belongs to the backbone, not to the item representation, so a fused semantic+ID
representation plugs in unchanged; input index `num_items + 1` means [MASK].
"""

from __future__ import annotations

import torch
from torch import nn

from engine.config import ModelConfig
from engine.data.dataset import PAD
from engine.models.base import ItemRepresentation, SequentialBackbone
from engine.models.sasrec import INIT_STD, TransformerEncoder, check_dims, init_weights


class BERT4Rec(SequentialBackbone):
    objective = "masked"

    def __init__(self, items: ItemRepresentation, cfg: ModelConfig):
        super().__init__()
        check_dims(cfg, items)
        self.items, self.max_len = items, cfg.max_len
        self.mask_token = items.num_items + 1
        self.mask_vector = nn.Parameter(torch.randn(items.dim) * INIT_STD)
        self.encoder = TransformerEncoder(cfg, causal=False, norm_input=True)
        # BERT's output transform before the tied item table.
        self.head = nn.Sequential(nn.Linear(items.dim, items.dim), nn.GELU(), nn.LayerNorm(items.dim))
        for module in (self.encoder, self.head):
            module.apply(init_weights)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        seq = seq[:, -self.max_len :]
        is_mask = (seq == self.mask_token).unsqueeze(-1)
        x = self.items(seq.masked_fill(is_mask.squeeze(-1), PAD))
        x = torch.where(is_mask, self.mask_vector.to(x.dtype), x)
        valid = seq != PAD
        return self.head(self.encoder(x, valid)) * valid.unsqueeze(-1)

    def last_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """Append [MASK] after each history (dropping the oldest item only when that exceeds max_len)."""
        mask_column = torch.full((seq.shape[0], 1), self.mask_token, dtype=seq.dtype, device=seq.device)
        return self.forward(torch.cat([seq, mask_column], dim=1)[:, -self.max_len :])[:, -1]
