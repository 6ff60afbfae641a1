"""Top-K recommendations for one user, scored exactly as the evaluator scores (same `ItemScorer` path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.data.dataset import SequenceDataset
from engine.evaluation.evaluator import ItemScorer, exclude_, inference, left_pad
from engine.models.base import SequentialBackbone

HISTORIES = ("valid", "test", "all")


@dataclass(frozen=True)
class Recommendation:
    item: int  # item index (1..num_items)
    item_id: str  # raw id from the source data
    title: str
    score: float
    rank: int  # 1-based position in the list
    in_history: bool  # the item is in the history the model was given (possible only without exclusion)


def user_history(dataset: SequenceDataset, user: int, history: str) -> np.ndarray:
    """ "valid": what validation ranks after; "test": adds the validation item; "all": the whole sequence
    (what to recommend next, after everything the user did)."""
    if history == "valid":
        return dataset.valid_history(user)
    if history == "test":
        return dataset.test_history(user)
    if history == "all":
        return dataset.sequences[user]
    raise ValueError(f"history: expected one of {HISTORIES}, got {history!r}")


def recommend(
    model: SequentialBackbone,
    dataset: SequenceDataset,
    user: int,
    k: int = 10,
    exclude_history: bool = True,
    history: str = "test",
    max_len: int = 50,
    device: torch.device | str | None = None,
) -> list[Recommendation]:
    """The `k` best-scoring items for `user` after the chosen history, best first.

    `device` defaults to the model's own device; `max_len` is the model's input length (the last items are kept).
    """
    if not 0 <= user < dataset.num_users:
        raise ValueError(f"user: expected an index in 0..{dataset.num_users - 1}, got {user}")
    if k <= 0:
        raise ValueError(f"k: expected a positive count, got {k}")
    items = user_history(dataset, user, history)
    if device is None:
        device = next(model.parameters()).device
    seen = np.unique(items[items >= 1])
    with inference(model):
        scorer = ItemScorer(model)
        seq = torch.from_numpy(left_pad([items], max_len)).to(device)
        scores = scorer.score(scorer.encode(seq))
        if exclude_history and len(seen):
            cols = torch.from_numpy(seen - 1).to(scores.device)
            exclude_(scores, torch.zeros_like(cols), cols)
        top = torch.topk(scores[0], min(k, scores.shape[1]))
    in_history = set(seen.tolist())
    out = []
    for position, (value, column) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
        if value == float("-inf"):
            break  # fewer unseen items than k
        item = column + 1
        out.append(
            Recommendation(
                item, dataset.item_ids[item], dataset.title(item), float(value), position, item in in_history
            )
        )
    return out
