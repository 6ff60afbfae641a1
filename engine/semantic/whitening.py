"""UniSRec's MoE-enhanced parametric whitening adapter (Hou et al., KDD 2022): a frozen text embedding x [..., E]
becomes Σ_k g_k(x) · (x − b_k) W_k [..., D], one learnable bias b_k ("whitening" centre) and projection W_k per
expert, mixed by a softmax gate over the experts. Used by the `unisrec` method (engine.methods.unisrec).

As in the official code: the projections start at Normal(0, 0.02) without a bias of their own, b_k at zero,
dropout is applied to x before the bias is subtracted (each expert its own mask), the gate and noise weights
start at zero (so the experts are mixed evenly at first), and the gate is noisy only while training:
logits = x·W_g + ε · (softplus(x·W_n) + 0.01), ε ~ N(0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.semantic.fusion import AddFusion

PROJECTION_STD = 0.02
NOISE_FLOOR = 1e-2


class ParametricWhitening(nn.Module):
    """One expert: (dropout(x) − b) W, W without a bias."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(in_dim))
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        nn.init.normal_(self.lin.weight, std=PROJECTION_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.dropout(x) - self.bias)


class MoEWhitening(nn.Module):
    """`experts` parametric whitening layers E→D mixed by a (noisy while training) softmax gate over x."""

    def __init__(self, in_dim: int, out_dim: int, experts: int = 8, dropout: float = 0.2, noisy_gate: bool = True):
        super().__init__()
        if experts < 1:
            raise ValueError(f"MoEWhitening: needs at least one expert, got {experts}")
        self.noisy_gate = noisy_gate
        self.experts = nn.ModuleList(ParametricWhitening(in_dim, out_dim, dropout) for _ in range(experts))
        self.w_gate = nn.Parameter(torch.zeros(in_dim, experts))
        self.w_noise = nn.Parameter(torch.zeros(in_dim, experts))

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights [..., experts]; noise only in training mode."""
        logits = x @ self.w_gate
        if self.noisy_gate and self.training:
            logits = logits + torch.randn_like(logits) * (F.softplus(x @ self.w_noise) + NOISE_FLOOR)
        return torch.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([expert(x) for expert in self.experts], dim=-2)  # [..., experts, D]
        return (self.gates(x).unsqueeze(-1) * outputs).sum(dim=-2)


class WhitenedIdItems(AddFusion):
    """UniSRec's item: its ID embedding plus the MoE whitening of its frozen text vector (state-dict names as `add`
    fusion's: ids.weight, semantic.weight, semantic.adapter.*).

    A batch of histories is adapted once per distinct item, not once per position: the adapter is 8 projections
    of every vector, and ml-latest-small's batches hold 256 x 50 positions but under 3,650 distinct items. In
    evaluation mode this is exactly the per-position result; in training an item repeated within one batch shares
    its dropout mask and gate noise there (the official code draws them per position).
    """

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        distinct, where = torch.unique(items, return_inverse=True)
        return super().forward(distinct)[where]
