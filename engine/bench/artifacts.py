"""Per-user test results kept beside a run's checkpoint, so a results table can be recomputed and tested later.

The pipeline calls `record_test_ranks` once, after the test evaluation: it writes `run-<id>-<token>-test-ranks.npz`
(users, their 0-based test ranks, targets and whether each target is a head item) and logs it as the run's
`test_ranks` artifact. Per-user HR/NDCG@K follow from the ranks (`per_user_metric`), with the definitions of
engine/evaluation/metrics.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RANKS_KIND = "test_ranks"
# Run-level timings as tags: the store's public reads return final valid/ and test/ metrics, not info/ ones.
TRAIN_SECONDS_TAG = "train_seconds"
SECONDS_TO_BEST_TAG = "train_seconds_to_best"


def record_test_ranks(
    store: Any, folder: Path, stem: str, run_id: int, evaluator: Any, ranks: np.ndarray, result: Any
) -> Path:
    """Save and log one run's test ranks (`result` is the trainer's TrainResult), and tag the run with its
    training seconds and the training seconds it took to reach the best epoch. `stem` is the run's checkpoint
    stem (run-<id>-<token>), so that runs of two databases sharing a folder never overwrite each other's ranks."""
    from engine.training.checkpoint import sha256_of

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-test-ranks.npz"
    np.savez_compressed(
        path,
        users=np.asarray(evaluator.users, dtype=np.int64),
        ranks=np.asarray(ranks, dtype=np.int64),
        targets=np.asarray(evaluator.targets, dtype=np.int64),
        target_is_head=np.asarray(evaluator.target_is_head),
    )
    store.set_artifact(run_id, RANKS_KIND, path, sha256_of(path))
    tags = {TRAIN_SECONDS_TAG: f"{result.train_seconds:.3f}"}
    if result.best_epoch is not None:
        history = getattr(result, "history", None) or []
        to_best = sum(float(h.get("train_seconds", 0.0)) for h in history if h.get("epoch", 0) <= result.best_epoch)
        tags[SECONDS_TO_BEST_TAG] = f"{to_best:.3f}"
    store.set_tags(run_id, tags)
    return path


@dataclass(frozen=True)
class RankFile:
    users: np.ndarray
    ranks: np.ndarray
    target_is_head: np.ndarray


def load_test_ranks(path: str | Path) -> RankFile:
    with np.load(path, allow_pickle=False) as data:
        return RankFile(data["users"], data["ranks"], data["target_is_head"].astype(bool))


def per_user_metric(ranks: np.ndarray, metric: str, k: int) -> np.ndarray:
    """HR@k or NDCG@k of each user (one relevant item each), as metrics.ranking_metrics averages them."""
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks < k
    if metric == "HR":
        return hit.astype(np.float64)
    if metric == "NDCG":
        return np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    raise ValueError(f"per-user metric: expected HR or NDCG, got {metric!r}")
