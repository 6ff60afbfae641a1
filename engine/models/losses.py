"""Training losses over a backbone's hidden states, computed only where there is a target.

Hidden states are gathered at target positions (target != 0) before any scoring: padding costs nothing, and
full cross-entropy scores about (mean sequence length) x batch rows instead of batch x max_len rows.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F

from engine.data.dataset import PAD
from engine.models.base import ItemRepresentation, SequentialBackbone

LOSSES = ("ce", "bce", "sampled-softmax")
SHARED_NEGATIVES_PER_UNIT = 100  # sampled-softmax draws 100 * num_negatives negatives shared by the batch

ItemSource = Union[SequentialBackbone, ItemRepresentation, torch.Tensor, Callable[[], torch.Tensor]]


class _Items:
    """Uniform access to item vectors: the whole table (for full CE) or just some rows (for sampled losses,
    so that an expensive fused representation is evaluated only on the items a batch needs)."""

    def __init__(self, source: ItemSource):
        if isinstance(source, SequentialBackbone):
            self.table, self.rows, self.num_items = source.item_table, source.items, source.items.num_items
        elif isinstance(source, ItemRepresentation):
            self.table, self.rows, self.num_items = source.all_items, source, source.num_items
        elif isinstance(source, torch.Tensor):
            self.table, self.rows, self.num_items = (lambda: source), (lambda idx: source[idx]), source.shape[0] - 1
        elif callable(source):
            self.table, self.rows = source, (lambda idx: source()[idx])
            self.num_items = -1  # known only once the table is built
        else:
            raise TypeError(f"items: expected a backbone, item representation, tensor or callable, got {type(source)}")

    def count(self) -> int:
        return self.num_items if self.num_items >= 0 else self.table().shape[0] - 1


def _uniform_items(shape: tuple[int, ...], num_items: int, device: torch.device,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Item indices uniform in 1..num_items, drawn on the generator's device (a CPU generator serves CUDA too)."""
    where = generator.device if generator is not None else device
    return torch.randint(1, num_items + 1, shape, generator=generator, device=where).to(device, non_blocking=True)


def sequence_loss(
    kind: str,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    items: ItemSource,
    num_negatives: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean loss over the positions of `targets` [B, L] that are not padding; `hidden` is [B, L, D].

    kind: "ce" full softmax over all items; "bce" one positive vs `num_negatives` uniform negatives each;
    "sampled-softmax" softmax over the positive and 100 * `num_negatives` uniform negatives shared by the batch.
    Negatives are not filtered against the user's history (a 1/num_items chance per draw).
    """
    if kind not in LOSSES:
        raise ValueError(f"train.loss: unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")
    if num_negatives < 1 and kind != "ce":
        raise ValueError(f"train.num_negatives: must be at least 1, got {num_negatives}")
    at_target = targets != PAD
    h = hidden[at_target]  # [N, D]
    positives = targets[at_target]  # [N]
    if positives.numel() == 0:
        return hidden.sum() * 0.0  # keeps the graph valid for a batch without targets
    source = _Items(items)

    if kind == "ce":
        table = source.table()
        logits = h @ table[1:].T  # padding is never a class; class c is item c + 1
        return F.cross_entropy(logits.float(), positives - 1)

    if kind == "bce":
        negatives = _uniform_items((positives.shape[0], num_negatives), source.count(), h.device, generator)
        pos_logits = (h * source.rows(positives)).sum(-1)
        neg_logits = torch.einsum("nd,nkd->nk", h, source.rows(negatives))
        return (F.binary_cross_entropy_with_logits(pos_logits.float(), torch.ones_like(pos_logits, dtype=torch.float))
                + F.binary_cross_entropy_with_logits(neg_logits.float(), torch.zeros_like(neg_logits, dtype=torch.float)))

    negatives = _uniform_items((SHARED_NEGATIVES_PER_UNIT * num_negatives,), source.count(), h.device, generator)
    pos_logits = (h * source.rows(positives)).sum(-1, keepdim=True)  # [N, 1]
    neg_logits = h @ source.rows(negatives).T  # [N, M]
    # A shared negative that is some row's own positive is not a negative for that row.
    neg_logits = neg_logits.masked_fill(negatives[None, :] == positives[:, None], float("-inf"))
    logits = torch.cat([pos_logits, neg_logits], dim=1).float()
    return F.cross_entropy(logits, torch.zeros_like(positives))
