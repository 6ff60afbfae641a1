"""LLM-ESR (Liu et al., NeurIPS 2024, "LLM-ESR: Large Language Models Enhancement for Long-tailed Sequential
Recommendation"), written from its paper and its official code (Applied-Machine-Learning-Lab/LLM-ESR,
models/DualLLMSRS.py and models/LLMESR.py).

Dual view: a semantic view (the frozen semantic table through a trainable adapter) and a collaborative view (an
ID table initialised from the PCA of the semantic table, then trained). Both get SASRec's input (scaled by
sqrt(D), the same position embeddings and dropout), then cross-attention between the views, then ONE shared
SASRec encoder runs over each view. A sequence's hidden state is [h_id; h_sem] and an item's vector is
[id; adapter(sem)], so a score is the sum of the two views' dot products, as the official `predict` has it.

Two deliberate departures from the official code: its SASRec backbone has the causal mask commented out and its
cross-attention masks padding only, so an early position sees later items; here both are causal.

Retrieval-augmented self-distillation: before training, each user's neighbours are the `similar_users` users
whose TRAINING histories are most similar (cosine of the mean semantic vector of the history; the official code
embeds a prompt of the history's titles with an LLM, also from the training part). At each step the user's last
hidden state is pulled (MSE) toward the mean of its neighbours' last hidden states, computed without gradient,
weighted by `distill_weight` (alpha). The neighbours exist only for training; nothing of them is stored.

`teacher = "epoch"` is this project's cheaper variant, not the paper's: every user's teacher state is encoded once
at each epoch's start (eval mode, so without dropout) and the step reads its neighbours' rows. A step then encodes
its batch only, where the paper's encodes the batch and k neighbours each (k = 10: 11 x the sequences), and the
teacher lags the student by at most one epoch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ConfigError, ModelConfig
from engine.data.dataset import PAD
from engine.models.base import ExtraLoss, ItemRepresentation, SequentialBackbone
from engine.models.sasrec import INITIALISERS, TransformerEncoder, attention_mask, xavier_init
from engine.semantic.fusion import ID_INIT_STD, SemanticTable

CROSS_HEADS = 2  # the official Multi_CrossAttention(hidden, hidden, 2)
SIMILARITY_CHUNK = 1024  # users per block of the similarity matrix (Beauty's 22k x 22k would be 2 GB at once)
TEACHER_CHUNK = 1024  # teacher inputs per forward when encoding every user's teacher state (teacher = "epoch")


class DualViewItems(ItemRepresentation):
    """An item is [id; adapter(semantic)], width 2D; `views` gives the two halves for the encoder."""

    def __init__(self, num_items: int, dim: int, semantic: SemanticTable, id_init: np.ndarray | None = None):
        super().__init__()
        if semantic.dim != dim:
            raise ValueError(f"llm-esr: the adapter gives {semantic.dim} dims, the ID table {dim}")
        self.num_items, self.view_dim, self.dim = num_items, dim, 2 * dim
        self.ids = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=ID_INIT_STD)
        with torch.no_grad():
            if id_init is not None:
                self.ids.weight.copy_(torch.as_tensor(id_init, dtype=torch.float32))
            self.ids.weight[0].zero_()
        self.semantic = semantic

    def views(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sem = self.semantic(items)
        return self.ids(items), sem * (items != PAD).unsqueeze(-1).to(sem.dtype)  # the adapter's bias: not at padding

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.views(items), dim=-1)


class CrossAttention(nn.Module):
    """Queries from one view, keys and values from the other (the official Multi_CrossAttention: bias-free
    projections, an output Linear, no residual), with the causal mask added."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, dim // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(self.q(x)), split(self.k(y)), split(self.v(y)), attn_mask=allowed
        )
        return self.out(attended.transpose(1, 2).reshape(b, length, dim))


class LLMESR(SequentialBackbone):
    objective = "causal"

    def __init__(
        self,
        items: DualViewItems,
        cfg: ModelConfig,
        distill_weight: float = 0.0,
        similar_users: int = 10,
        teacher: str = "step",
        residual: float = 0.0,
    ):
        super().__init__()
        self.teacher, self.residual = teacher, float(residual)
        dim = cfg.hidden_size
        if items.view_dim != dim:
            raise ConfigError(f"model.hidden_size: {dim} differs from the llm-esr views' width {items.view_dim}")
        if cfg.num_heads < 1 or dim % cfg.num_heads:
            raise ConfigError(f"model.num_heads: hidden_size {dim} is not divisible by num_heads {cfg.num_heads}")
        heads = CROSS_HEADS if dim % CROSS_HEADS == 0 else 1
        self.items, self.max_len, self.scale = items, cfg.max_len, math.sqrt(dim)
        self.distill_weight, self.similar_users = float(distill_weight), int(similar_users)
        self.encoder = TransformerEncoder(cfg, causal=True)  # shared by both views (positions included)
        self.llm2id = CrossAttention(dim, heads)  # queries: semantic view; keys, values: collaborative view
        self.id2llm = CrossAttention(dim, heads)
        self.encoder.apply(INITIALISERS[cfg.init])  # the shared SASRec as every other method's
        # The official code Xavier-initialises its own modules. Under N(0, 0.02) the cross-attention's chained
        # projections shrank the views 50-130 x at the start (std 0.16 / 0.36 in, 0.0012 / 0.0079 out; now 0.048 /
        # 0.17), and without distillation the model reached validation NDCG@10 0.045 on ml-latest-small, against
        # the ID model's 0.071.
        for module in (self.llm2id, self.id2llm, self.items.semantic.adapter):
            module.apply(xavier_init)
        # Training only (prepare_distillation): input row -> user, each user's neighbours and teacher input.
        self._user_of_row: dict[bytes, int] | None = None
        self._neighbours: torch.Tensor | None = None
        self._teacher_inputs: torch.Tensor | None = None
        self._teacher_states: torch.Tensor | None = None  # teacher = "epoch": [U, 2D], encoded at the epoch's start

    # --- encoding ---------------------------------------------------------------------------------------------

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """SASRec's input on the padded [B, L, D]: scaled vectors + right-anchored positions, then dropout."""
        enc, length = self.encoder, x.shape[1]
        positions = enc.positions(torch.arange(self.max_len - length, self.max_len, device=x.device))
        return enc.input_dropout(enc.input_norm(x * self.scale + positions))

    def _encode(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The shared encoder's blocks on packed tokens (as TransformerEncoder does, after its input step)."""
        enc, (b, length, dim) = self.encoder, x.shape
        where = valid.reshape(-1).nonzero().squeeze(1)
        tokens = x.reshape(b * length, dim).index_select(0, where)
        allowed = attention_mask(valid, causal=True)
        pads = self.max_len - valid.sum(dim=1)
        for block in enc.blocks:
            tokens = block(tokens, where, (b, length), allowed, pads)
        tokens = enc.final_norm(tokens)
        return tokens.new_zeros(b * length, dim).index_copy(0, where, tokens).view(b, length, dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, L, 2D] = [collaborative; semantic] hidden states, zero at padding."""
        seq = seq[:, -self.max_len :]
        valid = seq != PAD
        ids, sem = (self._embed(view) for view in self.items.views(seq))
        allowed = attention_mask(valid, causal=True)
        cross_ids, cross_sem = self.llm2id(sem, ids, allowed), self.id2llm(ids, sem, allowed)
        if self.residual:  # the official `1 * cross + 0 * own`: each position's own vector added back, weight r
            cross_ids, cross_sem = cross_ids + self.residual * ids, cross_sem + self.residual * sem
        both = self._encode(torch.cat([cross_ids, cross_sem]), valid.repeat(2, 1))  # one pass of the shared encoder
        return torch.cat(both.chunk(2), dim=-1)

    # --- retrieval-augmented self-distillation ----------------------------------------------------------------

    def prepare_distillation(self, train_sequences: list[np.ndarray]) -> None:
        """Finds each user's `similar_users` neighbours from the training sequences alone (never a validation or
        test item) and keeps, for the loss, which user an input row is and each user's teacher input: the
        training sequence without its last item, which is exactly the row the trainer feeds (SequenceBatcher)."""
        table = self.items.semantic.weight.detach().float().cpu()
        inputs = [np.asarray(s, dtype=np.int64)[:-1][-self.max_len :] for s in train_sequences]
        self._neighbours = similar_users(
            table,
            [np.asarray(s, dtype=np.int64) for s in train_sequences],
            [len(row) > 0 for row in inputs],
            self.similar_users,
        )
        teacher = np.zeros((len(inputs), self.max_len), dtype=np.int64)
        self._user_of_row = {}
        for user, row in enumerate(inputs):
            if len(row):
                teacher[user, self.max_len - len(row) :] = row
                self._user_of_row.setdefault(row.tobytes(), user)  # identical histories: the same neighbours
        self._teacher_inputs = torch.from_numpy(teacher)

    def users_of(self, inputs: torch.Tensor) -> torch.Tensor:
        """The user index of each training input row [B, L] (left-padded)."""
        if self._user_of_row is None:
            raise RuntimeError("llm-esr: the distillation needs prepare_distillation(train sequences) before training")
        users = []
        for row in inputs.detach().cpu().numpy():
            user = self._user_of_row.get(row[row != PAD].astype(np.int64).tobytes())
            if user is None:
                raise RuntimeError("llm-esr: an input row is no user's training sequence (prepared for other data?)")
            users.append(user)
        return torch.tensor(users, dtype=torch.long)

    def start_epoch(self) -> None:
        if self.teacher == "epoch" and self.extra_loss_term() is not None:
            self._teacher_states = self.teacher_states()

    @torch.no_grad()
    def teacher_states(self) -> torch.Tensor:
        """[U, 2D]: every user's last hidden state over its teacher input, in eval mode (no dropout), fp32."""
        if self._teacher_inputs is None:
            raise RuntimeError("llm-esr: the distillation needs prepare_distillation(train sequences) before training")
        was_training, device = self.training, self.items.ids.weight.device
        self.eval()
        try:
            states = []
            for start in range(0, len(self._teacher_inputs), TEACHER_CHUNK):
                chunk = self._teacher_inputs[start : start + TEACHER_CHUNK]
                width = max(int((chunk != PAD).sum(dim=1).max()), 1)
                states.append(self.forward(chunk[:, -width:].to(device))[:, -1].float())
            return torch.cat(states)
        finally:
            self.train(was_training)

    def distillation_loss(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """MSE between each user's last hidden state and the mean of its neighbours' (no gradient through
        the teachers, as the official `.detach()`); unweighted."""
        neighbours = self._neighbours[self.users_of(inputs)]  # [B, k]
        b, k = neighbours.shape
        if self.teacher == "epoch":
            if self._teacher_states is None:
                raise RuntimeError("llm-esr: teacher 'epoch' needs start_epoch() before the epoch's first step")
            teachers = self._teacher_states[neighbours.to(self._teacher_states.device)].mean(dim=1)
            return F.mse_loss(hidden[:, -1], teachers.to(hidden.dtype))
        teacher_inputs = self._teacher_inputs[neighbours.reshape(-1)]
        width = int((teacher_inputs != PAD).sum(dim=1).max())
        with torch.no_grad():
            teachers = self.forward(teacher_inputs[:, -width:].to(hidden.device))[:, -1]
        return F.mse_loss(hidden[:, -1], teachers.view(b, k, -1).mean(dim=1))

    def extra_loss_term(self) -> ExtraLoss | None:
        if self.distill_weight == 0:
            return None  # nothing retrieved, nothing computed

        def term(inputs: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
            return self.distill_weight * self.distillation_loss(inputs, hidden)

        return term


def similar_users(
    table: torch.Tensor, train_sequences: list[np.ndarray], candidate: list[bool], k: int
) -> torch.Tensor:
    """[U, k'] user indices: for each user the k' = min(k, candidates - 1) other candidate users whose training
    histories' mean semantic vectors (rows of `table`) are most cosine-similar; the user itself never."""
    profiles = torch.stack(
        [table[torch.from_numpy(s)].mean(dim=0) if len(s) else table.new_zeros(table.shape[1]) for s in train_sequences]
    )
    profiles = F.normalize(profiles, dim=1)
    allowed = torch.tensor(candidate)
    count = min(k, max(int(allowed.sum()) - 1, 1))
    out = []
    for start in range(0, len(profiles), SIMILARITY_CHUNK):
        block = profiles[start : start + SIMILARITY_CHUNK] @ profiles.T
        block[:, ~allowed] = -math.inf
        rows = torch.arange(start, start + len(block))
        block[torch.arange(len(block)), rows] = -math.inf  # not oneself
        out.append(block.topk(count, dim=1).indices)
    return torch.cat(out)
