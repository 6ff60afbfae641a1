"""Top-K ranking metrics from the 0-based rank of each user's target item.

Rank 0 means the target scored best. With one relevant item per user (leave-one-out):
HR@K = 1 if rank < K; NDCG@K = 1 / log2(rank + 2) if rank < K; MRR@K = 1 / (rank + 1) if rank < K;
each averaged over users.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engine.config import ConfigError

METRIC_NAMES = ("HR", "NDCG", "MRR")
HEAD_FRACTION = 0.2  # the most popular 20% of items are the "head" (LLM-ESR's long-tail split)


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = [int(k) for k in ks]
    if not ks or any(k <= 0 for k in ks):
        raise ConfigError(f"eval.ks: expected positive cut-offs, got {list(ks)!r}")
    return ks


def ranking_metrics(ranks: np.ndarray | Sequence[int], ks: Sequence[int], suffix: str = "") -> dict[str, float]:
    """Mean HR@K, NDCG@K and MRR@K for every K, keyed "HR@10" (+ `suffix`, e.g. "/head").

    An empty set of ranks gives 0.0 for every metric (the caller reports how many users it covered).
    """
    ks = _check_ks(ks)
    ranks = np.asarray(ranks, dtype=np.int64).reshape(-1)
    if ranks.size and ranks.min() < 0:
        raise ValueError(f"ranks must be >= 0, got {int(ranks.min())}")
    per_user = {
        "HR": np.ones(ranks.shape, dtype=np.float64),
        "NDCG": 1.0 / np.log2(ranks + 2.0),
        "MRR": 1.0 / (ranks + 1.0),
    }
    out: dict[str, float] = {}
    for name in METRIC_NAMES:
        for k in ks:
            hit = ranks < k
            out[f"{name}@{k}{suffix}"] = float(np.where(hit, per_user[name], 0.0).mean()) if ranks.size else 0.0
    return out


def popularity_head_mask(popularity: np.ndarray, head_fraction: float = HEAD_FRACTION) -> np.ndarray:
    """Boolean mask over item indices (0 = padding, never head): True for the `head_fraction` most popular items.

    Exactly ceil(head_fraction * num_items) items are head; ties at the boundary go to the lower item index
    (a stable sort), so the split is deterministic and its size does not depend on how counts happen to tie.
    """
    if not 0.0 < head_fraction <= 1.0:
        raise ValueError(f"head_fraction: expected a value in (0, 1], got {head_fraction!r}")
    popularity = np.asarray(popularity)
    num_items = len(popularity) - 1
    # round() first: 0.2 * 15 is 3.0000000000000004 in floating point, and ceil would make it 4.
    num_head = min(num_items, math.ceil(round(head_fraction * num_items, 9)))
    order = np.argsort(-popularity[1:], kind="stable") + 1
    head = np.zeros(len(popularity), dtype=bool)
    head[order[:num_head]] = True
    return head
