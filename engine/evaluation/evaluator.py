"""Leave-one-out evaluation: the rank of each user's held-out item, then HR/NDCG/MRR.

Protocols
- "full" (primary, RecBole's): the target is ranked against every item 1..num_items; padding (0) is never ranked.
  With `exclude_history` the items of the user's history are removed from the ranking, EXCEPT the target itself:
  a repeat purchase is still a correct prediction, and removing it would make such users unrankable.
- "sampled": the target against `num_sampled` negatives drawn uniformly, without replacement, among the items
  that are neither in the user's history nor the target (seeded per user, so the draw does not depend on batching
  or on which users are evaluated). This protocol exists ONLY to compare with papers that used it (LLM-ESR,
  LLMEmb, SASRec's original code); its numbers are about tenfold higher and can order models differently
  (Krichene & Rendle, KDD 2020). Never select or report models on it.

Ties are pessimistic: rank = number of OTHER ranked items whose score is >= the target's, so a model that gives
every item the same score ranks last, not first.

Histories: split "valid" ranks `valid_target(u)` after `valid_history(u)`; split "test" ranks `test_target(u)` after
`test_history(u)`, which includes the validation item. The test item never enters any history.

Speed: `RankingEvaluator` builds everything that depends only on the data once (users sorted by history length,
left-padded batches each padded only to its own longest history, the history items to exclude, sampled
negatives), because the trainer evaluates every epoch. Each call then runs the model once per batch under
`torch.inference_mode`, and ranks by comparing scores with the target's score (no top-k sort), in row chunks
small enough that a chunk's score matrix stays in the CPU cache.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from engine.choices import PROTOCOL_CHOICES
from engine.config import ConfigError, EvalConfig
from engine.data.dataset import SequenceDataset
from engine.evaluation.metrics import popularity_head_mask, ranking_metrics
from engine.models.base import SequentialBackbone

SPLITS = ("valid", "test")
PROTOCOLS = PROTOCOL_CHOICES
CPU_CHUNK_ROWS = 256  # 256 x 12k float32 scores = 12 MB: measured 2-3x faster than 1024-row chunks on CPU
DEFAULT_SEED = 0


# ---------------------------------------------------------------------------------------------------------------
# The scoring path shared by evaluation and recommendation


@contextlib.contextmanager
def inference(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd; restores the model's previous train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def left_pad(histories: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """[B, width] int64: the last `max_len` items of each history, right-aligned, 0 (padding) on the left.

    `width` is the longest (truncated) history among these, so a batch of short histories stays narrow.
    """
    if max_len <= 0:
        raise ValueError(f"max_len: expected a positive length, got {max_len}")
    lengths = [min(len(h), max_len) for h in histories]
    width = max(max(lengths, default=1), 1)
    out = np.zeros((len(histories), width), dtype=np.int64)
    for row, (history, length) in enumerate(zip(histories, lengths)):
        if length:
            out[row, width - length :] = history[-length:]
    return out


class ItemScorer:
    """Scores of items 1..num_items (column j is item j + 1) for batches of left-padded histories.

    The plain path is `last_hidden(seq) @ item_table()[1:].T`, with the item table computed once per scorer (it may
    be an expensive fusion of semantic and ID vectors). A backbone that overrides `score_all` (an output bias, say)
    is scored through its own `score_all` instead, so evaluation always agrees with the model's definition.
    Create it inside `inference(model)`.
    """

    def __init__(self, model: SequentialBackbone):
        self.model = model
        self.custom = type(model).score_all is not SequentialBackbone.score_all
        self.items = None if self.custom else model.item_table()[1:]

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Per-row state that `score` consumes: hidden vectors [B, D], or the sequences for a custom scorer."""
        return seq if self.custom else self.model.last_hidden(seq)

    def score(self, state: torch.Tensor) -> torch.Tensor:
        """[B, num_items] scores for rows of `encode`'s output."""
        if self.custom:
            return self.model.score_all(state)[:, 1:]
        return state @ self.items.T

    def score_candidates(self, state: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """[B, C] scores of the given item indices (1-based) per row."""
        if self.custom:
            return self.model.score_all(state).gather(1, candidates)
        return torch.einsum("bd,bcd->bc", state, self.items[candidates - 1])


def exclude_(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Set scores[rows, cols] to -inf in place (items that must not be ranked or recommended)."""
    scores.index_put_((rows, cols), scores.new_full((), float("-inf")))  # made on the device: no host copy
    return scores


def pessimistic_ranks(scores: torch.Tensor, target_scores: torch.Tensor) -> torch.Tensor:
    """0-based ranks: how many other columns score >= the target's score. DESTROYS `scores` (in place, for speed).

    `target_scores` [B, 1] must be taken from `scores` itself, so the target counts itself exactly once.
    A NaN target score ranks last.
    """
    num_columns = scores.shape[1]
    # In-place float compare + float sum is ~3x faster on CPU than a bool tensor summed as int64. The sum is
    # float32 even for half-precision scores: counts up to 2**24 are exact in float32, not in bfloat16.
    at_least = scores.ge_(target_scores).sum(1, dtype=torch.float32)
    ranks = at_least.to(torch.int64) - 1
    return torch.where(torch.isnan(target_scores[:, 0]), num_columns - 1, ranks)


# ---------------------------------------------------------------------------------------------------------------
# Data-dependent structures, built once


@dataclass(frozen=True)
class _Batch:
    rows: np.ndarray  # positions of these users in RankingEvaluator.users
    seq: torch.Tensor  # [B, L] left-padded histories
    targets: torch.Tensor  # [B] target item index (1-based)
    # History items to exclude (the target never among them), grouped by row: row r owns entries ptr[r]:ptr[r+1].
    exclude_ptr: np.ndarray  # [B + 1]
    exclude_rows: torch.Tensor  # [E] row within the batch
    exclude_cols: torch.Tensor  # [E] score column (item - 1)
    negatives: torch.Tensor | None  # [B, num_sampled] item indices, sampled protocol only


def history_and_target(dataset: SequenceDataset, split: str, user: int) -> tuple[np.ndarray, int]:
    if split == "valid":
        return dataset.valid_history(user), dataset.valid_target(user)
    if split == "test":
        return dataset.test_history(user), dataset.test_target(user)
    raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")


def sample_negatives(num_items: int, forbidden: np.ndarray, count: int, seed: int, user: int) -> np.ndarray:
    """`count` distinct items from 1..num_items, none in `forbidden`, uniformly; reproducible from (seed, user)."""
    available = num_items - len(np.unique(forbidden[(forbidden >= 1) & (forbidden <= num_items)]))
    if count > available:
        raise ValueError(
            f"eval.num_sampled: user {user} has only {available} items outside its history, {count} requested"
        )
    rng = np.random.default_rng([seed, user])
    chosen = np.empty(0, dtype=np.int64)
    while len(chosen) < count:
        # Rejection sampling; keeping first occurrences in draw order gives a uniform subset without replacement.
        draws = rng.integers(1, num_items + 1, size=2 * count + len(forbidden))
        draws = np.concatenate([chosen, draws[~np.isin(draws, forbidden)]])
        _, first = np.unique(draws, return_index=True)
        chosen = draws[np.sort(first)][:count]
    return chosen


class RankingEvaluator:
    """Evaluates any SequentialBackbone on one split of one dataset; reuse it across epochs.

    `users` restricts evaluation to those user indices (default: every user). `seed` fixes the sampled protocol's
    negatives.
    """

    def __init__(
        self,
        dataset: SequenceDataset,
        split: str,
        cfg: EvalConfig,
        max_len: int,
        users: Sequence[int] | None = None,
        seed: int = DEFAULT_SEED,
    ):
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if cfg.protocol not in PROTOCOLS:
            raise ConfigError(f"eval.protocol: expected one of {PROTOCOLS}, got {cfg.protocol!r}")
        if cfg.batch_size <= 0:
            raise ConfigError(f"eval.batch_size: expected a positive size, got {cfg.batch_size}")
        if cfg.protocol == "sampled" and cfg.num_sampled <= 0:
            raise ConfigError(f"eval.num_sampled: expected a positive count, got {cfg.num_sampled}")
        self.dataset, self.split, self.cfg, self.max_len, self.seed = dataset, split, cfg, max_len, seed
        self.num_items = dataset.num_items
        all_users = np.arange(dataset.num_users) if users is None else np.asarray(users, dtype=np.int64)
        if all_users.size and (all_users.min() < 0 or all_users.max() >= dataset.num_users):
            raise ValueError(f"users: indices must be in 0..{dataset.num_users - 1}")

        pairs = [history_and_target(dataset, split, int(u)) for u in all_users]
        self.users = all_users  # evaluation order of `ranks()`
        self.targets = np.array([target for _, target in pairs], dtype=np.int64)
        head = popularity_head_mask(dataset.item_popularity())
        self.target_is_head = head[self.targets]
        self._batches = self._build_batches([history for history, _ in pairs])

    def _build_batches(self, histories: list[np.ndarray]) -> list[_Batch]:
        lengths = np.array([min(len(h), self.max_len) for h in histories], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding per batch
        batches = []
        for start in range(0, len(order), self.cfg.batch_size):
            rows = order[start : start + self.cfg.batch_size]
            batch_histories = [histories[r] for r in rows]
            targets = self.targets[rows]
            exclude = [self._excluded_items(h, t) for h, t in zip(batch_histories, targets)]
            ptr = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum([len(e) for e in exclude], out=ptr[1:])
            cols = np.concatenate(exclude) - 1 if exclude else np.empty(0, dtype=np.int64)
            exclude_rows = np.repeat(np.arange(len(rows)), np.diff(ptr))
            negatives = None
            if self.cfg.protocol == "sampled":
                negatives = torch.from_numpy(
                    np.stack(
                        [
                            sample_negatives(self.num_items, np.append(h, t), self.cfg.num_sampled, self.seed, int(u))
                            for h, t, u in zip(batch_histories, targets, self.users[rows])
                        ]
                    )
                )
            batches.append(
                _Batch(
                    rows=rows,
                    seq=torch.from_numpy(left_pad(batch_histories, self.max_len)),
                    targets=torch.from_numpy(targets),
                    exclude_ptr=ptr,
                    exclude_rows=torch.from_numpy(exclude_rows.astype(np.int64)),
                    exclude_cols=torch.from_numpy(cols.astype(np.int64)),
                    negatives=negatives,
                )
            )
        return batches

    def _excluded_items(self, history: np.ndarray, target: int) -> np.ndarray:
        if not self.cfg.exclude_history or self.cfg.protocol != "full":
            return np.empty(0, dtype=np.int64)
        items = np.unique(history)
        return items[(items != target) & (items >= 1)]

    def ranks(self, model: SequentialBackbone, device: torch.device | str) -> np.ndarray:
        """0-based rank of each user's target, aligned with `self.users`."""
        device = torch.device(device)
        ranks = np.empty(len(self.users), dtype=np.int64)
        chunk = CPU_CHUNK_ROWS if device.type == "cpu" else self.cfg.batch_size
        with inference(model):
            scorer = ItemScorer(model)
            for batch in self._batches:
                seq = batch.seq.to(device, non_blocking=True)
                targets = batch.targets.to(device, non_blocking=True)
                state = scorer.encode(seq)
                if batch.negatives is not None:
                    batch_ranks = self._sampled_ranks(scorer, state, targets, batch.negatives.to(device))
                else:
                    excluded = (
                        batch.exclude_rows.to(device, non_blocking=True),
                        batch.exclude_cols.to(device, non_blocking=True),
                    )
                    bounds = [(a, min(a + chunk, len(seq))) for a in range(0, len(seq), chunk)]
                    batch_ranks = torch.cat(
                        [self._full_ranks(scorer, state, targets, excluded, batch.exclude_ptr, a, b) for a, b in bounds]
                    )
                ranks[batch.rows] = batch_ranks.cpu().numpy()
        return ranks

    @staticmethod
    def _full_ranks(
        scorer: ItemScorer,
        state: torch.Tensor,
        targets: torch.Tensor,
        excluded: tuple[torch.Tensor, torch.Tensor],
        ptr: np.ndarray,
        start: int,
        stop: int,
    ) -> torch.Tensor:
        """Ranks of rows start:stop of a batch; one chunk of scores at a time keeps them in the CPU cache."""
        scores = scorer.score(state[start:stop])
        lo, hi = int(ptr[start]), int(ptr[stop])
        if hi > lo:
            rows, cols = excluded
            exclude_(scores, rows[lo:hi] - start, cols[lo:hi])
        target_scores = scores.gather(1, (targets[start:stop] - 1).unsqueeze(1))
        return pessimistic_ranks(scores, target_scores)

    @staticmethod
    def _sampled_ranks(
        scorer: ItemScorer, state: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        candidates = torch.cat([targets.unsqueeze(1), negatives], dim=1)
        scores = scorer.score_candidates(state, candidates)
        return pessimistic_ranks(scores, scores[:, :1].clone())

    def evaluate(self, model: SequentialBackbone, device: torch.device | str) -> dict[str, float]:
        """Metrics for every K in cfg.ks, the same for head/tail target items, and the number of users."""
        return self.metrics(self.ranks(model, device))

    def metrics(self, ranks: np.ndarray) -> dict[str, float]:
        """`evaluate`'s metrics from ranks already computed by `ranks()` (so a caller that keeps them ranks once)."""
        ks = self.cfg.ks
        out = ranking_metrics(ranks, ks)
        for group, mask in (("head", self.target_is_head), ("tail", ~self.target_is_head)):
            out.update(ranking_metrics(ranks[mask], ks, suffix=f"/{group}"))
            out[f"users/{group}"] = float(mask.sum())
        out["users"] = float(len(ranks))
        return out


def evaluate(
    model: SequentialBackbone,
    dataset: SequenceDataset,
    split: str,
    cfg: EvalConfig,
    max_len: int,
    device: torch.device | str,
    users: Sequence[int] | None = None,
) -> dict[str, float]:
    """One-off evaluation; build a `RankingEvaluator` instead when evaluating repeatedly (every epoch)."""
    return RankingEvaluator(dataset, split, cfg, max_len, users).evaluate(model, device)
