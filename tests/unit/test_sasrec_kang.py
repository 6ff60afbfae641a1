"""SASRec with `model.block=kang` computes what the paper's code computes: checked against a direct
re-statement of that code (left-padded to max_len, causal-only mask, padding zeroed after each block) that
shares the model's weights, at every real position."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.config import ModelConfig
from engine.models.base import IdEmbedding
from engine.models.sasrec import SASRec


def reference_forward(model: SASRec, seq: torch.Tensor) -> torch.Tensor:
    """Kang & McAuley's SASRec forward (eval mode) on sequences left-padded to max_len."""
    enc, max_len = model.encoder, model.max_len
    seq = F.pad(seq, (max_len - seq.shape[1], 0))
    pad = (seq == 0).unsqueeze(-1)
    x = model.items(seq) * model.scale + enc.positions.weight
    x = x.masked_fill(pad, 0.0)
    length = x.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()  # the only mask: padding keys count
    for block in enc.blocks:
        heads, dim = block.num_heads, x.shape[-1]
        q = block.q(block.attn_norm(x))
        k, v = block.kv(x).chunk(2, dim=-1)
        q, k, v = (t.view(t.shape[0], length, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(dim // heads)
        weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(x.shape)
        x = block.ffn_norm(block.attn_out(attended) + x)
        x = (block.ffn(x) + x).masked_fill(pad, 0.0)
    return enc.final_norm(x)


@pytest.mark.parametrize("heads", [1, 2])
def test_the_kang_block_matches_the_papers_arithmetic_with_padding_keys(heads):
    torch.manual_seed(0)
    cfg = ModelConfig(
        hidden_size=16, num_layers=2, num_heads=heads, dropout=0.0, max_len=12, block="kang", init="xavier"
    )
    model = SASRec(IdEmbedding(30, 16), cfg).eval()
    with torch.no_grad():  # biases away from their zero init: the padding keys' values are the biases
        for block in model.encoder.blocks:
            block.kv.bias.normal_(std=0.5)
            block.q.bias.normal_(std=0.5)
    seq = torch.tensor([[0, 0, 0, 0, 5, 7, 9], [1, 2, 3, 4, 5, 6, 8], [0, 0, 0, 0, 0, 0, 3]])  # trimmed to 7
    ours = model(seq)
    reference = reference_forward(model, seq)[:, -seq.shape[1] :]
    real = seq != 0
    assert torch.allclose(ours[real], reference[real], atol=1e-5)
    # the padding is part of the arithmetic: the same items with less padding give a different output
    shorter = SASRec(IdEmbedding(30, 16), ModelConfig(**{**cfg.__dict__, "max_len": 7})).eval()
    shorter.load_state_dict(
        {k: v[-7:] if k == "encoder.positions.weight" else v for k, v in model.state_dict().items()}
    )
    assert not torch.allclose(shorter(seq)[0, -1], ours[0, -1], atol=1e-4)


def test_xavier_init_gives_the_papers_scales():
    torch.manual_seed(0)
    model = SASRec(IdEmbedding(30, 64), ModelConfig(hidden_size=64, max_len=50, init="xavier", block="kang"))
    positions = model.encoder.positions.weight
    assert positions.std().item() == pytest.approx(math.sqrt(2 / (50 + 64)), rel=0.1)  # not N(0, 0.02)
    default = SASRec(IdEmbedding(30, 64), ModelConfig(hidden_size=64, max_len=50))
    assert default.encoder.positions.weight.std().item() == pytest.approx(0.02, rel=0.1)
