"""Training losses over a backbone's hidden states, computed only where there is a target.

Hidden states are gathered at target positions (target != 0) before any scoring: padding costs nothing, and
full cross-entropy scores about (mean sequence length) x batch rows instead of batch x max_len rows.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F

from engine.choices import LOSS_CHOICES
from engine.config import ConfigError
from engine.data.dataset import PAD
from engine.models.base import ItemRepresentation, SequentialBackbone

LOSSES = LOSS_CHOICES  # the names live in engine.choices, so the config can check them without torch
SHARED_NEGATIVES_PER_UNIT = 100  # sampled-softmax draws 100 * num_negatives negatives shared by the batch
# Logit elements per chunk of the fused full CE: 16 MB of float32 on CPU (256- and 512-row chunks of Beauty's
# 12,101 items measured 77 ms per step against 89 ms for all rows at once), 256 MB on CUDA (not measured here).
CE_CHUNK_ELEMENTS_CPU = 1 << 22
CE_CHUNK_ELEMENTS_CUDA = 1 << 26

ItemSource = Union[SequentialBackbone, ItemRepresentation, torch.Tensor, Callable[[], torch.Tensor]]


class _Items:
    """Uniform access to item vectors: the whole table (for full CE) or just some rows (for sampled losses,
    so that an expensive fused representation is evaluated only on the items a batch needs)."""

    def __init__(self, source: ItemSource):
        if isinstance(source, SequentialBackbone):
            self.table, self.rows, self.num_items = source.item_table, source.item_rows, source.items.num_items
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


def _uniform_items(
    shape: tuple[int, ...], num_items: int, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """Item indices uniform in 1..num_items, drawn on the generator's device (a CPU generator serves CUDA too)."""
    where = generator.device if generator is not None else device
    return torch.randint(1, num_items + 1, shape, generator=generator, device=where).to(device, non_blocking=True)


class _LinearCrossEntropy(torch.autograd.Function):
    """mean_i CE(h_i @ W.T, t_i) with the gradients computed during the forward pass, a chunk of rows at a time.

    Full CE over every item is most of a training step. Unfused, autograd keeps the [N, C] logits and log-softmax,
    then fills an [N, C] zero gradient and runs the log-softmax backward: several passes over the largest tensors of
    the step. Here each chunk's softmax is turned into its gradient in place (softmax - one-hot) and multiplied out
    at once, so only a chunk of logits ever exists. Measured on Beauty's shapes (1,455 x 12,101, 2 CPU threads):
    129 -> 77 ms per step, same loss and gradients to float rounding.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n, classes = h.shape[0], weight.shape[0]
        chunk = max(1, (CE_CHUNK_ELEMENTS_CUDA if h.is_cuda else CE_CHUNK_ELEMENTS_CPU) // classes)
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # One dtype for the logits and h's gradient: autocast's (bf16 on a GPU) when it is on, else the wider of
        # the two; under autocast a fused table (concat's or an adapter's Linear) arrives in bf16 and h in fp32.
        # The table's gradient is summed in at least fp32 (addmm_ is in place, so autocast never touches it).
        device_type = h.device.type
        compute = (
            torch.get_autocast_dtype(device_type)
            if torch.is_autocast_enabled(device_type)
            else torch.promote_types(h.dtype, weight.dtype)
        )
        hc, wc = h.to(compute), weight.to(compute)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = (
            torch.zeros(weight.shape, dtype=torch.promote_types(compute, torch.float32), device=weight.device)
            if want_w
            else None
        )  # accumulated in fp32 over chunks
        total = torch.zeros((), dtype=torch.promote_types(compute, torch.float32), device=h.device)
        for start in range(0, n, chunk):
            rows, wanted = hc[start : start + chunk], targets[start : start + chunk]
            log_probs = torch.log_softmax((rows @ wc.T).to(total.dtype), dim=1)  # fp32 even under autocast
            total -= log_probs.gather(1, wanted[:, None]).sum()
            if want_h or want_w:
                grad = log_probs.exp_()  # softmax, in place
                grad[torch.arange(len(wanted), device=h.device), wanted] -= 1.0
                if want_h:
                    grad_h[start : start + chunk] = grad.to(compute) @ wc
                if want_w:
                    grad_w.addmm_(grad.T, h[start : start + chunk].to(grad_w.dtype))
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype) if grad_w is not None else None)
        ctx.n = n
        return total / n

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_output / ctx.n
        return (grad_h * scale if grad_h is not None else None, grad_w * scale if grad_w is not None else None, None)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy(h @ weight.T, targets) (mean over rows), without keeping the [N, C] logits."""
    if h.shape[0] == 0:
        return h.sum() * 0.0
    return _LinearCrossEntropy.apply(h, weight, targets)


def sequence_loss(
    kind: str,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    items: ItemSource,
    num_negatives: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean loss over the positions of `targets` [B, L] that are not padding; `hidden` is [B, L, D].

    kind: the registered loss (engine.registry) — "ce" full softmax over all items; "bce" one positive vs
    `num_negatives` uniform negatives each; "sampled-softmax" softmax over the positive and 100 * `num_negatives`
    uniform negatives shared by the batch. Negatives are not filtered against the user's history (a 1/num_items
    chance per draw).
    """
    loss = _registered_loss(kind)
    if num_negatives < 1 and kind != "ce":
        raise ConfigError(f"train.num_negatives: must be at least 1, got {num_negatives}")
    at_target = targets != PAD
    h = hidden[at_target]  # [N, D]
    positives = targets[at_target]  # [N]
    if positives.numel() == 0:
        return hidden.sum() * 0.0  # keeps the graph valid for a batch without targets
    return loss(h, positives, _Items(items), num_negatives, generator)


def _registered_loss(kind: str) -> LossFunction:
    from engine import registry

    return registry.load("loss", kind)


# A registered loss: (hidden states at the targets [N, D], their target items [N], the item vectors, num_negatives,
# the negatives' generator) -> the mean loss.
LossFunction = Callable[[torch.Tensor, torch.Tensor, _Items, int, "torch.Generator | None"], torch.Tensor]


def full_cross_entropy(
    h: torch.Tensor, positives: torch.Tensor, source: _Items, num_negatives: int, generator: torch.Generator | None
) -> torch.Tensor:
    """`ce`: softmax over every item (the fused, chunked linear cross-entropy)."""
    table = source.table()
    return linear_cross_entropy(h, table[1:], positives - 1)  # padding is never a class; class c is item c + 1


def binary_cross_entropy(
    h: torch.Tensor, positives: torch.Tensor, source: _Items, num_negatives: int, generator: torch.Generator | None
) -> torch.Tensor:
    """`bce`: each positive against `num_negatives` uniform negatives of its own."""
    negatives = _uniform_items((positives.shape[0], num_negatives), source.count(), h.device, generator)
    pos_logits = (h * source.rows(positives)).sum(-1)
    neg_logits = torch.einsum("nd,nkd->nk", h, source.rows(negatives))
    return F.binary_cross_entropy_with_logits(
        pos_logits.float(), torch.ones_like(pos_logits, dtype=torch.float)
    ) + F.binary_cross_entropy_with_logits(neg_logits.float(), torch.zeros_like(neg_logits, dtype=torch.float))


def sampled_softmax(
    h: torch.Tensor, positives: torch.Tensor, source: _Items, num_negatives: int, generator: torch.Generator | None
) -> torch.Tensor:
    """`sampled-softmax`: softmax over the positive and 100 * `num_negatives` uniform negatives shared by the batch."""
    negatives = _uniform_items((SHARED_NEGATIVES_PER_UNIT * num_negatives,), source.count(), h.device, generator)
    pos_logits = (h * source.rows(positives)).sum(-1, keepdim=True)  # [N, 1]
    neg_logits = h @ source.rows(negatives).T  # [N, M]
    # A shared negative that is some row's own positive is not a negative for that row.
    neg_logits = neg_logits.masked_fill(negatives[None, :] == positives[:, None], float("-inf"))
    logits = torch.cat([pos_logits, neg_logits], dim=1).float()
    return F.cross_entropy(logits, torch.zeros_like(positives))
