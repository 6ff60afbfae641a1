"""Backbones: causal masking, padding invariance, NaN-free padding, the factory's errors."""

from __future__ import annotations

import pytest
import torch

from engine.config import ModelConfig
from engine.models import BERT4Rec, IdEmbedding, ItemRepresentation, build_model

NUM_ITEMS = 30


def make(backbone: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, hidden_size=16, num_layers=2, num_heads=2, dropout=0.1, max_len=10)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return build_model(cfg, NUM_ITEMS).eval()


SEQ = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 9, 10, 11]])


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_causal_outputs_ignore_later_items(backbone):
    model = make(backbone)
    before = model(SEQ)
    for t in range(2, SEQ.shape[1] - 1):
        changed = SEQ.clone()
        changed[:, t + 1 :] = torch.randint(1, NUM_ITEMS + 1, changed[:, t + 1 :].shape)
        after = model(changed)
        assert torch.allclose(before[:, : t + 1], after[:, : t + 1], atol=1e-5), f"position {t} saw the future"
        assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :], atol=1e-5)


def test_bidirectional_bert4rec_does_see_later_items():
    """Proves the causal test can tell: the same change moves BERT4Rec's earlier outputs."""
    model = make("bert4rec")
    changed = SEQ.clone()
    changed[:, 6:] = torch.tensor([20, 21])
    assert not torch.allclose(model(SEQ)[:, :6], model(changed)[:, :6], atol=1e-5)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_left_padding_does_not_change_last_hidden(backbone):
    model = make(backbone)
    extra = torch.cat([torch.zeros(3, 2, dtype=torch.long), SEQ], dim=1)  # width 10 = max_len
    assert torch.allclose(model.last_hidden(SEQ), model.last_hidden(extra), atol=1e-5)
    trimmed = SEQ[2:, -3:]  # the third row alone, without any padding
    assert torch.allclose(model.last_hidden(SEQ)[2:], model.last_hidden(trimmed), atol=1e-5)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_padding_rows_are_finite_and_zero_in_training_mode(backbone):
    model = make(backbone).train()
    seq = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 5]])  # one row is all padding
    out = model(seq)
    assert torch.isfinite(out).all()
    assert out[0].abs().sum() == 0 and out[1, :3].abs().sum() == 0
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_histories_longer_than_max_len_keep_the_newest(backbone):
    model = make(backbone, max_len=4)
    long = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    assert torch.allclose(model.last_hidden(long), model.last_hidden(long[:, -4:]), atol=1e-5)
    assert model.score_all(long).shape == (1, NUM_ITEMS + 1)


def test_bert4rec_appends_its_own_mask_vector():
    model = make("bert4rec")
    assert isinstance(model, BERT4Rec) and model.objective == "masked"
    assert model.items.all_items().shape[0] == NUM_ITEMS + 1  # [MASK] is not an item row
    explicit = torch.cat([SEQ, torch.full((3, 1), model.mask_token)], dim=1)
    assert torch.allclose(model.last_hidden(SEQ), model(explicit)[:, -1], atol=1e-6)
    before = model.last_hidden(SEQ)
    with torch.no_grad():
        model.mask_vector.add_(torch.randn(16))  # the [MASK] slot must be read from the backbone's own parameter
    assert not torch.allclose(before, model.last_hidden(SEQ), atol=1e-4)


class FakeScaledItems(ItemRepresentation):
    """A stand-in for a fused representation: an ID table times a learned scalar."""

    def __init__(self, num_items: int, dim: int):
        super().__init__()
        self.num_items, self.dim = num_items, dim
        self.ids = IdEmbedding(num_items, dim)
        self.gain = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.ids(items) * self.gain


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_item_representation_is_pluggable(backbone):
    items = FakeScaledItems(NUM_ITEMS, 16)
    model = build_model(ModelConfig(backbone=backbone, hidden_size=16, max_len=10), NUM_ITEMS, items)
    assert model.items is items
    model.score_all(SEQ).sum().backward()
    assert items.gain.grad is not None and items.gain.grad != 0


def test_unknown_backbone_names_the_field():
    with pytest.raises(ValueError, match=r"model\.backbone.*'transformer-xl'.*sasrec"):
        build_model(ModelConfig(backbone="transformer-xl"), NUM_ITEMS)


def test_bad_dimensions_name_the_field():
    with pytest.raises(ValueError, match=r"model\.num_heads"):
        build_model(ModelConfig(backbone="sasrec", hidden_size=10, num_heads=3), NUM_ITEMS)
    with pytest.raises(ValueError, match=r"model\.hidden_size"):
        build_model(ModelConfig(backbone="sasrec", hidden_size=16), NUM_ITEMS, IdEmbedding(NUM_ITEMS, 8))
    with pytest.raises(ValueError, match="items"):
        build_model(ModelConfig(hidden_size=16), NUM_ITEMS, IdEmbedding(NUM_ITEMS + 1, 16))
