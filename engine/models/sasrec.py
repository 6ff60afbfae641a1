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

from engine.choices import INIT_CHOICES, SASREC_BLOCK_CHOICES
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


def xavier_init(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases, as the paper's code (and CE-SCE-LLMRec's SASRec) initialise."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.xavier_normal_(module.weight)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


INITIALISERS = {"normal": init_weights, "xavier": xavier_init}


def check_dims(cfg: ModelConfig, items: ItemRepresentation) -> None:
    if items.dim != cfg.hidden_size:
        raise ConfigError(
            f"model.hidden_size: {cfg.hidden_size} differs from the item representation's dim {items.dim}"
        )
    if cfg.num_heads < 1 or cfg.hidden_size % cfg.num_heads:
        raise ConfigError(
            f"model.num_heads: hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}"
        )
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

    def forward(
        self,
        tokens: torch.Tensor,
        where: torch.Tensor,
        shape: tuple[int, int],
        allowed: torch.Tensor,
        pads: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens [T, D] sit at flat positions `where` of a [B, L] batch (`shape`); allowed [B, 1, L, L] bool.
        (`pads`, each sequence's padding up to max_len, is for KangBlock.)"""
        (b, length), dim = shape, tokens.shape[1]
        qkv = self.qkv(self.attn_norm(tokens))
        padded = qkv.new_zeros(b * length, 3 * dim).index_copy(0, where, qkv)
        q, k, v = padded.view(b, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        attended = attend(q, k, v, allowed, self.dropout_p if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(b * length, dim).index_select(0, where)
        tokens = tokens + self.dropout(self.attn_out(attended))
        return tokens + self.dropout(self.ffn(self.ffn_norm(tokens)))


class KangBlock(nn.Module):
    """The block of Kang & McAuley's SASRec code (as pmixer's and CE-SCE-LLMRec's ports have it): the layer norm
    feeds the attention's queries only (keys and values are the unnormalised input, which is also the residual),
    then a layer norm, and a point-wise FFN of width D with ReLU and dropout after each of its two layers, whose
    residual is the normalised input.

    That code pads every sequence on the left to max_len and masks keys only causally, so each query also
    attends to the padding positions, whose input is zero: their keys and values are the projections' biases,
    a learned "nothing" that takes a share of the attention growing with the padding. All padding keys are alike,
    so here they are one extra key with logit + log(number of padding positions): the same arithmetic on packed
    tokens, whatever length a batch is trimmed to."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout_p = num_heads, dropout
        self.attn_norm = nn.LayerNorm(dim, eps=1e-8)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-8)
        self.ffn = nn.Sequential(
            nn.Linear(dim, dim), FastDropout(dropout), nn.ReLU(), nn.Linear(dim, dim), FastDropout(dropout)
        )

    def forward(
        self,
        tokens: torch.Tensor,
        where: torch.Tensor,
        shape: tuple[int, int],
        allowed: torch.Tensor,
        pads: torch.Tensor,
    ) -> torch.Tensor:
        (b, length), dim = shape, tokens.shape[1]
        heads, per_head = self.num_heads, dim // self.num_heads
        projected = torch.cat([self.q(self.attn_norm(tokens)), self.kv(tokens)], dim=1)
        padded = projected.new_zeros(b * length, 3 * dim).index_copy(0, where, projected)
        q, k, v = padded.view(b, length, 3, heads, per_head).permute(2, 0, 3, 1, 4)
        null_k, null_v = self.kv.bias.view(2, heads, 1, per_head).to(k.dtype)  # a zero input's key and value
        k = torch.cat([k, null_k.expand(b, heads, 1, per_head)], dim=2)
        v = torch.cat([v, null_v.expand(b, heads, 1, per_head)], dim=2)
        logits = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill_(~allowed, float("-inf"))
        null = pads.to(q.dtype).log().view(b, 1, 1, 1).expand(b, 1, length, 1)  # log 0 = -inf: no padding
        attended = attend(q, k, v, torch.cat([logits, null], dim=3), self.dropout_p if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(b * length, dim).index_select(0, where)
        tokens = self.ffn_norm(tokens + self.attn_out(attended))
        return tokens + self.ffn(tokens)


BLOCKS = {"pre-norm": TransformerBlock, "kang": KangBlock}
assert tuple(BLOCKS) == SASREC_BLOCK_CHOICES, "engine.choices.SASREC_BLOCK_CHOICES must list every block"
assert tuple(INITIALISERS) == INIT_CHOICES, "engine.choices.INIT_CHOICES must list every initialiser"


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Scaled dot-product attention; `allowed` is a bool mask, or a float one added to the logits. With dropout
    on CPU, written out so that the attention weights get the cheap dropout mask (SDPA's own CPU path is the
    same arithmetic with a Bernoulli draw per weight)."""
    if dropout_p == 0.0 or q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    scores = scores.masked_fill(~allowed, float("-inf")) if allowed.dtype == torch.bool else scores + allowed
    weights = torch.softmax(scores, dim=-1)
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
        block = BLOCKS[cfg.block]
        self.blocks = nn.ModuleList(block(cfg.hidden_size, cfg.num_heads, cfg.dropout) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.hidden_size)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, L, D] item vectors (already scaled), valid [B, L] bool -> hidden [B, L, D], zero at padding."""
        b, length, dim = x.shape
        position_ids = torch.arange(self.max_len - length, self.max_len, device=x.device)
        where = valid.reshape(-1).nonzero().squeeze(1)  # flat positions of real items
        tokens = (x + self.positions(position_ids)).reshape(b * length, dim).index_select(0, where)
        tokens = self.input_dropout(self.input_norm(tokens))
        allowed = attention_mask(valid, self.causal)
        pads = self.max_len - valid.sum(dim=1)  # padding up to max_len, which KangBlock attends to
        for block in self.blocks:
            tokens = block(tokens, where, (b, length), allowed, pads)
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
        self.encoder.apply(INITIALISERS[cfg.init])

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        seq = seq[:, -self.max_len :]
        return self.encoder(self.items(seq) * self.scale, seq != PAD)
