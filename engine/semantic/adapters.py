"""The learned reductions (`knowledge.reduction` = adapter-*): trainable E→D modules over the frozen semantic
table, trained jointly with the recommender. Registered in engine.registry; built by engine.semantic.fusion.

Each is exactly the torch layer (or stack) it always was, so the checkpoints' state-dict names
(`items.semantic.adapter.weight`, `items.semantic.adapter.0.weight`, ...) stay the same.
"""

from __future__ import annotations

from torch import nn


class LinearAdapter(nn.Linear):
    """`adapter-linear`: one Linear E→D."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.1):
        super().__init__(in_dim, out_dim)


class MLPAdapter(nn.Sequential):
    """`adapter-mlp`: Linear→GELU→Dropout→Linear, hidden E/2 by default (LLM-ESR's 1536→768→64)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.1):
        hidden = hidden or max(out_dim, in_dim // 2)
        super().__init__(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))
