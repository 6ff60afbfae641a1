"""The cheap CPU dropout and the written-out attention it is used in: right rate, unbiased, still causal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.models.dropout import FastDropout, dropout, keep_scale
from engine.models.sasrec import attend, attention_mask
from test_models import NUM_ITEMS, SEQ, make


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_mask_drops_at_the_asked_rate_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    scale = keep_scale((1000, 1000), p, torch.device("cpu"), torch.float32)
    assert abs((scale == 0).float().mean().item() - p) < 0.003
    assert abs(scale.mean().item() - 1.0) < 0.005
    assert torch.allclose(scale[scale != 0], torch.tensor(1.0 / (1.0 - p)), rtol=1e-4)


def test_masks_follow_the_global_seed_and_change_between_draws():
    torch.manual_seed(3)
    first, second = dropout(torch.ones(500), 0.3, True), dropout(torch.ones(500), 0.3, True)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(torch.ones(500), 0.3, True))
    assert not torch.equal(first, second)


def test_evaluation_mode_and_zero_rate_leave_values_alone():
    x = torch.randn(64)
    layer = FastDropout(0.5).eval()
    assert torch.equal(layer(x), x) and torch.equal(dropout(x, 0.0, True), x)


def test_written_out_attention_matches_sdpa_when_nothing_is_dropped():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 6, 4) for _ in range(3))
    valid = torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6, [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    allowed = attention_mask(valid, causal=True)
    tiny = 1e-7  # rounds to no dropped level, but takes the written-out path
    assert torch.allclose(
        attend(q, k, v, allowed, tiny), F.scaled_dot_product_attention(q, k, v, attn_mask=allowed), atol=1e-6
    )


def test_sasrec_in_training_mode_never_sees_later_items():
    model = make("sasrec", dropout=0.3).train()
    torch.manual_seed(7)  # the same dropout masks for both passes
    before = model(SEQ)
    t = 4
    changed = SEQ.clone()
    changed[:, t + 1 :] = torch.randint(1, NUM_ITEMS + 1, changed[:, t + 1 :].shape)
    torch.manual_seed(7)
    after = model(changed)
    assert torch.allclose(before[:, : t + 1], after[:, : t + 1], atol=1e-5)
    assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :], atol=1e-5)
