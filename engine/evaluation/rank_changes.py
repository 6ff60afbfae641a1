"""Where a run wins: every user's full rank of the held-out item, and how those ranks change between two runs,
split by the held-out item's popularity (head / tail, the evaluator's split) and by the user's history length.

The ranks are the evaluator's own (`RankingEvaluator.ranks`, the full protocol, with the run's history exclusion),
so rank 1 here is a hit at every K and the metrics computed from them equal the run's test metrics.

A rank change is `rank in A - rank in B`: positive when B puts the held-out item higher (B "gained" for that user).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.config import EvalConfig
from engine.evaluation.evaluator import RankingEvaluator, history_and_target
from engine.evaluation.metrics import ranking_metrics

CHANGE_EDGES = (1, 10, 100)  # |change| buckets: 1-9, 10-99, 100 or more ("100+"); 0 is "same"
HISTORY_EDGES = (10, 20, 50, 100, 200)  # history length buckets: <10, 10-19, ..., 200 or more
METRIC_K = 10


@dataclass(frozen=True)
class UserRanks:
    """One run's full rank of each user's held-out item (1 = first), aligned arrays."""

    users: np.ndarray  # user indices
    targets: np.ndarray  # the held-out item of each user
    ranks: np.ndarray  # 1-based rank among all items, history excluded as the run's evaluation excludes it
    target_is_head: np.ndarray  # the held-out item is among the 20% most frequent training items
    history_lengths: np.ndarray  # items in the history the split ranks after
    num_items: int


def full_ranks(
    model,
    dataset,
    eval_cfg: EvalConfig,
    max_len: int,
    users: Sequence[int] | None = None,
    device="cpu",
    split: str = "test",
) -> UserRanks:
    """Ranks through the evaluator under the full protocol (a run evaluated on sampled negatives is ranked
    against every item here: a rank among 100 samples says nothing about a catalogue)."""
    cfg = dataclasses.replace(eval_cfg, protocol="full")
    evaluator = RankingEvaluator(dataset, split, cfg, max_len, users)
    ranks = evaluator.ranks(model, device) + 1
    lengths = np.array([len(history_and_target(dataset, split, int(u))[0]) for u in evaluator.users], dtype=np.int64)
    return UserRanks(evaluator.users, evaluator.targets, ranks, evaluator.target_is_head, lengths, dataset.num_items)


def change_labels(edges: Sequence[int] = CHANGE_EDGES) -> tuple[str, ...]:
    """Bucket names from the biggest gain to the biggest loss, e.g. "+100+" (100 or more), "+10–99", "+1–9",
    "same", "−1–9", …"""
    ranges = [f"{lo}–{hi - 1}" if hi - 1 > lo else str(lo) for lo, hi in zip(edges, edges[1:])]
    ranges.append(f"{edges[-1]}+")
    gains = [f"+{r}" for r in reversed(ranges)]
    losses = [f"−{r}" for r in ranges]
    return (*gains, "same", *losses)


def change_buckets(changes: np.ndarray, edges: Sequence[int] = CHANGE_EDGES) -> np.ndarray:
    """The `change_labels` position of each change."""
    if edges[0] != 1:
        raise ValueError(f"change edges must start at 1 (0 is 'same'), got {tuple(edges)}")
    size = np.digitize(np.abs(changes), edges)  # 0: same, 1: first range, ..., len(edges): open-ended
    same = len(edges)  # position of "same" in change_labels
    return np.where(changes > 0, same - size, np.where(changes < 0, same + size, same))


def history_labels(edges: Sequence[int] = HISTORY_EDGES) -> tuple[str, ...]:
    inner = [f"{lo}–{hi - 1}" for lo, hi in zip(edges, edges[1:])]
    return (f"<{edges[0]}", *inner, f"{edges[-1]}+")


@dataclass(frozen=True)
class RankGroup:
    name: str  # "all users", "head items", "history 20–49"
    kind: str  # "all" | "popularity" | "history"
    users: int
    gained: int  # users whose held-out item B ranks higher than A
    same: int
    lost: int
    buckets: dict[str, int]  # users per change bucket, in change_labels order
    median_change: float
    median_rank_a: float
    median_rank_b: float
    ndcg_a: float  # NDCG@METRIC_K of the group's users in A
    ndcg_b: float

    @property
    def ndcg_gain(self) -> float | None:
        """Relative NDCG change B over A (None when A's is 0)."""
        return None if self.ndcg_a == 0 else self.ndcg_b / self.ndcg_a - 1


@dataclass(frozen=True)
class RankComparison:
    run_a: int | None
    run_b: int | None
    num_items: int
    users: int
    labels: tuple[str, ...]  # the change buckets, biggest gain first
    groups: list[RankGroup]


def _group(name: str, kind: str, a: np.ndarray, b: np.ndarray, edges: Sequence[int]) -> RankGroup:
    change = a - b
    labels = change_labels(edges)
    counts = np.bincount(change_buckets(change, edges), minlength=len(labels))
    ndcg = f"NDCG@{METRIC_K}"
    return RankGroup(
        name,
        kind,
        int(len(a)),
        int((change > 0).sum()),
        int((change == 0).sum()),
        int((change < 0).sum()),
        {label: int(n) for label, n in zip(labels, counts)},
        float(np.median(change)),
        float(np.median(a)),
        float(np.median(b)),
        ranking_metrics(a - 1, [METRIC_K])[ndcg],
        ranking_metrics(b - 1, [METRIC_K])[ndcg],
    )


def compare_ranks(
    a: UserRanks,
    b: UserRanks,
    run_a: int | None = None,
    run_b: int | None = None,
    history_edges: Sequence[int] = HISTORY_EDGES,
    change_edges: Sequence[int] = CHANGE_EDGES,
) -> RankComparison:
    """The distribution of rank changes A → B over all users, head and tail held-out items, and history-length
    buckets (empty buckets left out). Both must rank the same users' same held-out items (the same data)."""
    if not (np.array_equal(a.users, b.users) and np.array_equal(a.targets, b.targets)):
        raise ValueError("the two runs do not rank the same users' held-out items: they were trained on different data")
    groups = [_group("all users", "all", a.ranks, b.ranks, change_edges)]
    for name, mask in (("head items", a.target_is_head), ("tail items", ~a.target_is_head)):
        if mask.any():
            groups.append(_group(name, "popularity", a.ranks[mask], b.ranks[mask], change_edges))
    bucket = np.digitize(a.history_lengths, history_edges)
    for index, label in enumerate(history_labels(history_edges)):
        mask = bucket == index
        if mask.any():
            groups.append(_group(f"history {label}", "history", a.ranks[mask], b.ranks[mask], change_edges))
    return RankComparison(run_a, run_b, a.num_items, int(len(a.ranks)), change_labels(change_edges), groups)
