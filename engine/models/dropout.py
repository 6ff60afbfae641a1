"""Dropout with a cheap mask on CPU.

torch's CPU dropout draws one Bernoulli sample per element, and on Beauty's SASRec those draws were 17 % of a
training step (mostly the attention dropout over [B, heads, L, L]). Here one 64-bit draw gives three 16-bit
uniforms (the top 16 bits are skipped: `random_()` leaves int64's sign bit at 0), so a mask costs about a tenth
as much. The drop probability is rounded to a multiple of 1/65536 and the kept values are scaled by the exact keep
probability, so the expectation is unchanged. CUDA keeps torch's own (fast there) dropout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 1 << 16
UNIFORMS_PER_DRAW = 3


def keep_scale(shape: torch.Size | tuple[int, ...], p: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of `shape` holding 0 (dropped) or 1 / keep_probability (kept), from the global generator."""
    count = math.prod(shape)
    draws = torch.empty(-(-count // UNIFORMS_PER_DRAW), dtype=torch.int64, device=device).random_()
    uniforms = draws.view(torch.int16).view(-1, 4)[:, :UNIFORMS_PER_DRAW].reshape(-1)[:count].view(shape)
    dropped_levels = round(p * LEVELS)
    keep = uniforms >= dropped_levels - LEVELS // 2  # int16 is uniform over [-32768, 32767]
    return keep.to(dtype).mul_(LEVELS / (LEVELS - dropped_levels))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.is_cuda or round(p * LEVELS) >= LEVELS:
        return F.dropout(x, p, training)
    return x * keep_scale(x.shape, p, x.device, x.dtype)


class FastDropout(nn.Dropout):
    """nn.Dropout with the cheap CPU mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
