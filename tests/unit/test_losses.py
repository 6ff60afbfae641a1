"""Losses: only target positions count, CE matches its definition, every kind trains a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.config import RunConfig
from engine.data.dataset import SequenceDataset
from engine.events import StepLoss
from engine.models import LOSSES, IdEmbedding, build_model, sequence_loss
from engine.models import losses as losses_module
from engine.models.losses import linear_cross_entropy
from engine.training import train

NUM_ITEMS = 12


def cycle_dataset(num_users: int = 48, num_items: int = NUM_ITEMS, seed: int = 0) -> SequenceDataset:
    """Users walk item cycles (i -> i+1 mod n) from random starts: a next-item rule a model can learn."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(num_users):
        start, length = rng.integers(num_items), rng.integers(5, 12)
        sequences.append(((start + np.arange(length)) % num_items + 1).astype(np.int64))
    item_ids = ["[PAD]"] + [f"i{i}" for i in range(1, num_items + 1)]
    return SequenceDataset(
        "tiny", item_ids, [f"u{u}" for u in range(num_users)], sequences, [{} for _ in item_ids], "tiny"
    )


@pytest.mark.parametrize("kind", LOSSES)
def test_padding_positions_contribute_nothing(kind):
    torch.manual_seed(0)
    table = torch.randn(NUM_ITEMS + 1, 8)
    hidden = torch.randn(2, 5, 8, requires_grad=True)
    targets = torch.tensor([[0, 0, 3, 4, 5], [0, 7, 0, 9, 1]])
    loss = sequence_loss(kind, hidden, targets, table, 2, torch.Generator().manual_seed(1))
    loss.backward()
    padding = targets == 0
    assert hidden.grad[padding].abs().sum() == 0
    assert hidden.grad[~padding].abs().sum() > 0
    noisy = hidden.detach().clone()
    noisy[padding] += 100.0
    again = sequence_loss(kind, noisy, targets, table, 2, torch.Generator().manual_seed(1))
    assert torch.allclose(loss, again)


def test_full_cross_entropy_matches_its_definition():
    torch.manual_seed(0)
    items = IdEmbedding(NUM_ITEMS, 8)
    hidden = torch.randn(3, 4, 8)
    targets = torch.tensor([[0, 1, 2, 3], [0, 0, 0, 12], [5, 6, 0, 7]])
    mask = targets != 0
    logits = hidden[mask] @ items.all_items().T
    logits[:, 0] = float("-inf")  # padding is never a class
    expected = F.cross_entropy(logits, targets[mask])
    assert torch.allclose(sequence_loss("ce", hidden, targets, items), expected, atol=1e-5)


@pytest.mark.parametrize("chunk_elements", [1, 7 * 50, 1 << 22])  # one row, uneven chunks, everything at once
def test_fused_cross_entropy_matches_autograd_through_the_logits(monkeypatch, chunk_elements):
    monkeypatch.setattr(losses_module, "CE_CHUNK_ELEMENTS_CPU", chunk_elements)
    torch.manual_seed(0)
    h = torch.randn(23, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (23,))
    fused = linear_cross_entropy(h, weight, targets)
    (fused * 3.0).backward()  # a non-unit upstream gradient must scale both gradients
    grads = h.grad.clone(), weight.grad.clone()
    h.grad = weight.grad = None
    (F.cross_entropy(h @ weight.T, targets) * 3.0).backward()
    assert torch.allclose(fused, F.cross_entropy(h @ weight.T, targets))
    assert torch.allclose(grads[0], h.grad) and torch.allclose(grads[1], weight.grad)


def test_fused_cross_entropy_leaves_a_frozen_table_without_gradient():
    h = torch.randn(4, 8, requires_grad=True)
    weight = torch.randn(10, 8)  # e.g. a frozen semantic table
    linear_cross_entropy(h, weight, torch.tensor([1, 2, 3, 4])).backward()
    assert weight.grad is None and h.grad is not None and h.grad.abs().sum() > 0


def test_bce_matches_its_definition_on_the_drawn_negatives():
    torch.manual_seed(0)
    table = torch.randn(NUM_ITEMS + 1, 8)
    hidden = torch.randn(2, 3, 8)
    targets = torch.tensor([[0, 4, 5], [9, 0, 1]])
    k = 3
    loss = sequence_loss("bce", hidden, targets, table, k, torch.Generator().manual_seed(5))
    # the same generator draws the same negatives: k per target position, uniform over the real items 1..N
    negatives = torch.randint(1, NUM_ITEMS + 1, (4, k), generator=torch.Generator().manual_seed(5))
    h, positives = hidden[targets != 0], targets[targets != 0]
    pos = (h * table[positives]).sum(-1)  # [4]
    neg = torch.einsum("nd,nkd->nk", h, table[negatives])  # [4, k]
    expected = -torch.log(torch.sigmoid(pos)).mean() - torch.log(1 - torch.sigmoid(neg)).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_sampled_softmax_does_not_count_the_positive_as_a_negative():
    hidden = torch.zeros(1, 1, 4)  # every logit 0: the loss is log(1 + number of true negatives)
    table = torch.zeros(3, 4)  # two items; 100 negatives are drawn from {1, 2}
    gen = torch.Generator().manual_seed(0)
    loss = sequence_loss("sampled-softmax", hidden, torch.tensor([[1]]), table, 1, gen)
    drawn = torch.randint(1, 3, (100,), generator=torch.Generator().manual_seed(0))
    assert torch.isclose(loss, torch.log(1 + (drawn != 1).sum().float()))


def test_unknown_loss_names_the_field():
    with pytest.raises(ValueError, match=r"train\.loss.*'hinge'"):
        sequence_loss("hinge", torch.zeros(1, 1, 4), torch.tensor([[1]]), torch.zeros(3, 4))


@pytest.mark.parametrize(
    "backbone,kind",
    [("sasrec", "ce"), ("sasrec", "bce"), ("sasrec", "sampled-softmax"), ("gru4rec", "ce"), ("bert4rec", "ce")],
)
def test_each_loss_decreases_when_training(backbone, kind):
    dataset = cycle_dataset()
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.hidden_size, cfg.model.num_layers, cfg.model.max_len = backbone, 16, 1, 12
    cfg.model.dropout = 0.0
    epochs = 20 if backbone == "bert4rec" else 8  # recovering ~20% masked items learns more slowly
    cfg.train.loss, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = kind, epochs, 16, 1e-2
    cfg.train.device, cfg.train.patience = "cpu", 100
    cfg.train.lr_schedule, cfg.train.warmup_epochs = "constant", 0  # the loss at a fixed rate, not a schedule's
    model = build_model(cfg.model, dataset.num_items)
    losses: list[float] = []
    result = train(
        model,
        dataset,
        cfg,
        lambda m: {"NDCG@10": 0.0},
        lambda e: losses.append(e.loss) if isinstance(e, StepLoss) else None,
    )
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert last < 0.8 * first, f"{kind} on {backbone}: {first:.3f} -> {last:.3f}"
    assert len(losses) == epochs * 3  # 48 users / 16 per batch, every step reported


def test_fused_cross_entropy_takes_a_table_in_another_dtype_than_the_hidden_states():
    """Under autocast a fused table (concat's Linear) comes out in bf16 while h stays fp32 (this crashed on a GPU)."""
    torch.manual_seed(0)
    h = torch.randn(23, 8, requires_grad=True)
    weight = torch.randn(50, 8).to(torch.bfloat16).requires_grad_()
    targets = torch.randint(0, 50, (23,))
    fused = linear_cross_entropy(h, weight, targets)
    fused.backward()
    assert h.grad.dtype == torch.float32 and weight.grad.dtype == torch.bfloat16
    reference_h, reference_w = h.detach().clone().requires_grad_(), weight.detach().float().requires_grad_()
    reference = F.cross_entropy(reference_h @ reference_w.T, targets)
    reference.backward()
    assert torch.allclose(fused, reference, atol=1e-5)
    assert torch.allclose(h.grad, reference_h.grad, atol=1e-5)
    assert torch.allclose(weight.grad.float(), reference_w.grad, rtol=2e-2, atol=1e-3)


def test_fused_cross_entropy_under_cpu_autocast_matches_fp32_autograd_at_bf16_precision():
    torch.manual_seed(0)
    h = torch.randn(40, 16, requires_grad=True)
    weight = torch.randn(30, 16, requires_grad=True)
    targets = torch.randint(0, 30, (40,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        table = weight @ torch.eye(16)  # the table is bf16 here (a Linear's output under autocast), h fp32
        assert table.dtype == torch.bfloat16
        fused = linear_cross_entropy(h, table, targets)
    fused.backward()
    reference_h, reference_w = h.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    reference = F.cross_entropy(reference_h @ reference_w.T, targets)
    reference.backward()
    assert fused.dtype == torch.float32 and h.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-9 per operand): the loss and both gradients agree with
    # fp32 autograd to about 1 %, far closer than a wrong gradient (sign, scale, missing one-hot) could
    torch.testing.assert_close(fused, reference, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(h.grad, reference_h.grad, rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(weight.grad, reference_w.grad, rtol=2e-2, atol=2e-3)
