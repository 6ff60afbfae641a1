"""SASRec (Kang & McAuley, 2018): a causal transformer over the item history.

Positions are counted from the right (the newest item always gets the last position embedding), which is what
pmixer's SASRec gets by left-padding every sequence to `max_len`. That keeps outputs identical whether a batch is
padded to its own longest sequence or to `max_len`, so the trainer can trim batches freely.
The transformer pieces live here and BERT4Rec reuses them with a bidirectional mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ConfigError, ModelConfig
from engine.data.dataset import PAD
from engine.models.base import ItemRepresentation, SequentialBackbone
from engine.models.dropout import FastDropout, dropout

INIT_STD = 0.02  # RecBole's initialiser range for the backbone's own weights


def init_weights(module: nn.Module) -> None:
    """Normal(0, 0.02) weights and zero biases (RecBole); applied to a backbone's own layers only."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=INIT_STD)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def check_dims(cfg: ModelConfig, items: ItemRepresentation) -> None:
    if items.dim != cfg.hidden_size:
        raise ConfigError(f"model.hidden_size: {cfg.hidden_size} differs from the item representation's dim {items.dim}")
    if cfg.num_heads < 1 or cfg.hidden_size % cfg.num_heads:
        raise ConfigError(f"model.num_heads: hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}")
    if cfg.max_len < 1:
        raise ConfigError(f"model.max_len: must be at least 1, got {cfg.max_len}")


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + FFN(LN(x)); FFN inner size 4 * dim (RecBole: 256 for 64).

    It works on packed tokens (real items only, [T, D]) and scatters to [B, L] just for attention: Beauty's
    sequences average ~9 items in batches padded to 50, so per-token work and dropout shrink about 7-fold.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout_p = num_heads, dropout
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), FastDropout(dropout), nn.Linear(4 * dim, dim))
        self.dropout = FastDropout(dropout)

    def forward(self, tokens: torch.Tensor, where: torch.Tensor, shape: tuple[int, int],
                allowed: torch.Tensor) -> torch.Tensor:
        """tokens [T, D] sit at flat positions `where` of a [B, L] batch (`shape`); allowed [B, 1, L, L] bool."""
        (b, length), dim = shape, tokens.shape[1]
        qkv = self.qkv(self.attn_norm(tokens))
        padded = qkv.new_zeros(b * length, 3 * dim).index_copy(0, where, qkv)
        q, k, v = padded.view(b, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        attended = attend(q, k, v, allowed, self.dropout_p if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(b * length, dim).index_select(0, where)
        tokens = tokens + self.dropout(self.attn_out(attended))
        return tokens + self.dropout(self.ffn(self.ffn_norm(tokens)))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Scaled dot-product attention. With dropout on CPU, written out so that the attention weights get the
    cheap dropout mask (SDPA's own CPU path is the same arithmetic with a Bernoulli draw per weight)."""
    if dropout_p == 0.0 or q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return dropout(weights, dropout_p, True) @ v


def attention_mask(valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """[B, 1, L, L] bool: keys must be real items (and not later, when causal).

    Every position may also attend to itself, so that a padding row is never fully masked (a fully masked
    softmax row is NaN); real rows are unaffected because their own key is real, and padding rows are zeroed.
    """
    length = valid.shape[1]
    eye = torch.eye(length, dtype=torch.bool, device=valid.device)
    allowed = valid[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    return allowed | eye


class TransformerEncoder(nn.Module):
    """Right-anchored positional embeddings, `num_layers` blocks and a final layer norm."""

    def __init__(self, cfg: ModelConfig, causal: bool, norm_input: bool = False):
        super().__init__()
        self.causal, self.max_len = causal, cfg.max_len
        self.positions = nn.Embedding(cfg.max_len, cfg.hidden_size)
        # BERT4Rec (RecBole) normalises item + position before dropout; SASRec (pmixer) does not.
        self.input_norm = nn.LayerNorm(cfg.hidden_size) if norm_input else nn.Identity()
        self.input_dropout = FastDropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.hidden_size, cfg.num_heads, cfg.dropout) for _ in range(cfg.num_layers)
        )
        self.final_norm = nn.LayerNorm(cfg.hidden_size)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, L, D] item vectors (already scaled), valid [B, L] bool -> hidden [B, L, D], zero at padding."""
        b, length, dim = x.shape
        position_ids = torch.arange(self.max_len - length, self.max_len, device=x.device)
        where = valid.reshape(-1).nonzero().squeeze(1)  # flat positions of real items
        tokens = (x + self.positions(position_ids)).reshape(b * length, dim).index_select(0, where)
        tokens = self.input_dropout(self.input_norm(tokens))
        allowed = attention_mask(valid, self.causal)
        for block in self.blocks:
            tokens = block(tokens, where, (b, length), allowed)
        tokens = self.final_norm(tokens)
        return tokens.new_zeros(b * length, dim).index_copy(0, where, tokens).view(b, length, dim)


class SASRec(SequentialBackbone):
    objective = "causal"

    def __init__(self, items: ItemRepresentation, cfg: ModelConfig):
        super().__init__()
        check_dims(cfg, items)
        self.items, self.max_len = items, cfg.max_len
        self.scale = math.sqrt(items.dim)  # pmixer/Transformer: item vectors scaled by sqrt(d)
        self.encoder = TransformerEncoder(cfg, causal=True)
        self.encoder.apply(init_weights)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        seq = seq[:, -self.max_len:]
        return self.encoder(self.items(seq) * self.scale, seq != PAD)
