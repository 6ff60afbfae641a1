"""Item representations that inject semantic vectors, selected by `knowledge.method`:

- `id`: the plain ID table (baseline);
- `kirec`: ID embedding fused with the reduced semantic vector by `add`, `concat` (+ Linear 2D→D), `gate`
  (g = σ(W[id; sem] + b), out = g·id + (1−g)·sem) or `gated-add` (out = id + g·sem), the semantic side frozen
  or fine-tuned;
- `init`: an ID table initialised from the reduced semantic vectors (LLMInit, LLM2Sequential);
- `semantic-only`: no ID table, the reduced or adapted semantic vectors alone (LLMEmb).

The backbones only see `ItemRepresentation`, so none of this touches them. Row 0 (padding) is zero in every mode:
fused outputs are multiplied by a padding mask, because biases, LayerNorm and adapters map a zero input elsewhere.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.choices import ADAPTER_REDUCTIONS, FIXED_REDUCTIONS, FUSION_CHOICES, METHOD_CHOICES, REDUCTION_CHOICES
from engine.config import ConfigError, KnowledgeConfig
from engine.models.base import IdEmbedding, ItemRepresentation
from engine.semantic.reduction import make_adapter, reduce_table

ID_INIT_STD = 0.02  # IdEmbedding's init scale, which `init` rescales the semantic vectors to


class SemanticTable(nn.Module):
    """Reduced semantic vectors [..., D] for item indices: a fixed table (a buffer when frozen, a parameter when
    fine-tuned) or a frozen E-dim table passed through a trainable adapter."""

    def __init__(self, table: np.ndarray, trainable: bool = False, adapter: nn.Module | None = None, adapter_dim: int = 0):
        super().__init__()
        if adapter is not None and adapter_dim < 1:
            raise ValueError("SemanticTable: an adapter needs its output size (adapter_dim)")
        values = torch.as_tensor(np.ascontiguousarray(table), dtype=torch.float32)
        self.adapter = adapter
        if adapter is None and trainable:
            self.weight: torch.Tensor = nn.Parameter(values)
        else:
            self.register_buffer("weight", values)
        self.dim = adapter_dim if adapter is not None else int(values.shape[1])

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        # padding_idx keeps the padding row's gradient zero when the table itself is trained
        vectors = F.embedding(items, self.weight, padding_idx=0)
        return self.adapter(vectors) if self.adapter is not None else vectors


class _SemanticItems(ItemRepresentation):
    """Shared by the semantic representations: `device` also works without parameters (a frozen table only)."""

    @property
    def device(self) -> torch.device:
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def all_items(self) -> torch.Tensor:
        return self.forward(torch.arange(self.num_items + 1, device=self.device))


def _padding_mask(items: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return (items != 0).unsqueeze(-1).to(like.dtype)


class SemanticOnlyItems(_SemanticItems):
    """LLMEmb-style: items are their (reduced or adapted) semantic vectors; no ID table."""

    def __init__(self, num_items: int, semantic: SemanticTable):
        super().__init__()
        self.num_items, self.dim = num_items, semantic.dim
        self.semantic = semantic

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        out = self.semantic(items)
        return out * _padding_mask(items, out)


class FusedItems(_SemanticItems):
    """An ID embedding fused with a semantic vector of the same size D."""

    def __init__(self, num_items: int, dim: int, semantic: SemanticTable, fusion: str, layer_norm: bool = False):
        super().__init__()
        if semantic.dim != dim:
            raise ValueError(f"fusion: semantic vectors have {semantic.dim} dims, the ID embedding {dim}")
        self.num_items, self.dim, self.fusion = num_items, dim, fusion
        self.ids = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=ID_INIT_STD)
        with torch.no_grad():
            self.ids.weight[0].zero_()
        self.semantic = semantic
        self.norm = nn.LayerNorm(dim) if (fusion == "add" and layer_norm) else None
        # concat: [id; sem] → D. gate, gated-add: per-dimension weights g = σ(W[id; sem] + b), zero bias so g
        # starts near 0.5; gate mixes g·id + (1−g)·sem, gated-add keeps the whole ID vector and adds g·sem.
        self.mix = nn.Linear(2 * dim, dim) if fusion in ("concat", "gate", "gated-add") else None
        if fusion in ("gate", "gated-add"):
            nn.init.zeros_(self.mix.bias)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        ids, sem = self.ids(items), self.semantic(items)
        if self.fusion == "add":
            out = ids + sem
            if self.norm is not None:
                out = self.norm(out)
        elif self.fusion == "concat":
            out = self.mix(torch.cat([ids, sem], dim=-1))
        else:
            gate = torch.sigmoid(self.mix(torch.cat([ids, sem], dim=-1)))
            out = gate * ids + (1 - gate) * sem if self.fusion == "gate" else ids + gate * sem
        return out * _padding_mask(items, out)


# --- construction from the configuration ------------------------------------------------------------------------


def _choice(value: str, choices: tuple[str, ...], field_name: str) -> str:
    if value not in choices:
        raise ConfigError(f"knowledge.{field_name}: '{value}' is not one of {', '.join(choices)}")
    return value


def _check_semantic(semantic: np.ndarray | None, num_items: int, method: str) -> np.ndarray:
    if semantic is None:
        raise ConfigError(f"knowledge.method '{method}' needs semantic vectors, got none")
    semantic = np.asarray(semantic)
    if semantic.ndim != 2 or semantic.shape[0] != num_items + 1:
        raise ValueError(f"semantic: expected shape [{num_items + 1}, E] (row 0 = padding), got {list(semantic.shape)}")
    if not np.isfinite(semantic).all():
        raise ValueError("semantic: contains NaN or infinite values")
    if np.any(semantic[0] != 0):
        raise ValueError("semantic: row 0 is the padding row and must be all zeros")
    return semantic.astype(np.float32, copy=False)


def _rescale_rows(table: np.ndarray, target_norm: float) -> tuple[np.ndarray, float]:
    """Scales a table (row 0 = padding) so its real rows have mean L2 norm `target_norm`."""
    mean_norm = float(np.linalg.norm(table[1:], axis=1).mean()) if table.shape[0] > 1 else 0.0
    if mean_norm <= 0:
        raise ValueError("semantic: all items have the same vector (zero after centring or reduction); nothing to inject")
    factor = target_norm / mean_norm
    return (table * factor).astype(np.float32), factor


def _centre(table: np.ndarray) -> np.ndarray:
    """Removes the mean over real items (sentence embeddings share a large common direction), then rescales to
    mean row norm 1 so an adapter starts on well-conditioned inputs; the padding row stays zero."""
    out = np.zeros_like(table, dtype=np.float32)
    out[1:] = table[1:] - table[1:].mean(axis=0)
    return _rescale_rows(out, 1.0)[0]


def _counts(module: nn.Module) -> dict[str, int]:
    return {
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "frozen_values": sum(p.numel() for p in module.parameters() if not p.requires_grad)
        + sum(b.numel() for b in module.buffers()),
    }


def build_item_representation(
    kcfg: KnowledgeConfig,
    num_items: int,
    dim: int,
    semantic: np.ndarray | None,
    seed: int = 0,
    *,
    layer_norm: bool = False,
    adapter_hidden: int | None = None,
    adapter_dropout: float = 0.1,
) -> tuple[ItemRepresentation, dict[str, Any]]:
    """The item representation `kcfg.method` asks for, of width `dim`, and info for the run record.

    `semantic` is [num_items + 1, E] with row 0 = padding zeros (ignored for `id`). Module initialisation is
    seeded by `seed` without disturbing the global torch RNG. `layer_norm` applies to `add` fusion only.
    """
    method = _choice(kcfg.method, METHOD_CHOICES, "method")
    info: dict[str, Any] = {"method": method, "dim": dim}
    notes: list[str] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if method == "id":
            items: ItemRepresentation = IdEmbedding(num_items, dim)
            if semantic is not None:
                notes.append("semantic vectors ignored by method 'id'")
        else:
            table = _check_semantic(semantic, num_items, method)
            reduction = _choice(kcfg.reduction, REDUCTION_CHOICES, "reduction")
            info.update({"reduction": reduction, "semantic_dim": int(table.shape[1])})
            if method == "init" and reduction in ADAPTER_REDUCTIONS:
                raise ValueError(
                    f"knowledge.reduction: '{reduction}' is trained with the model, so it cannot initialise the ID table "
                    f"before training; method 'init' needs one of {', '.join(FIXED_REDUCTIONS)}"
                )
            if reduction in FIXED_REDUCTIONS:
                reduced, fitted = reduce_table(reduction, table, dim, seed)
                info.update(fitted.info())
                notes.extend(fitted.notes)
            if method == "init":
                items = _init_id_table(num_items, dim, reduced, info)
                if kcfg.freeze_semantic:
                    notes.append("freeze_semantic does not apply to 'init': the initialised ID table always trains")
            else:
                semantic_table = _semantic_table(kcfg, reduction, table, reduced if reduction in FIXED_REDUCTIONS else None,
                                                 dim, adapter_hidden, adapter_dropout, info, notes)
                if method == "semantic-only":
                    items = SemanticOnlyItems(num_items, semantic_table)
                else:
                    fusion = _choice(kcfg.fusion, FUSION_CHOICES, "fusion")
                    info["fusion"] = fusion
                    if layer_norm and fusion != "add":
                        notes.append(f"layer_norm applies to 'add' fusion only, not '{fusion}'")
                    items = FusedItems(num_items, dim, semantic_table, fusion, layer_norm=layer_norm)
    info.update(_counts(items))
    if notes:
        info["notes"] = "; ".join(notes)
    return items, info


def _init_id_table(num_items: int, dim: int, reduced: np.ndarray, info: dict[str, Any]) -> IdEmbedding:
    std = float(reduced[1:].std())
    if std <= 0:
        raise ValueError("semantic: every item's vector is identical after reduction; it cannot initialise the ID table")
    items = IdEmbedding(num_items, dim)
    with torch.no_grad():
        items.table.weight.copy_(torch.from_numpy(reduced * (ID_INIT_STD / std)))
        items.table.weight[0].zero_()
    info["semantic_scale"] = ID_INIT_STD / std
    return items


def _semantic_table(
    kcfg: KnowledgeConfig, reduction: str, table: np.ndarray, reduced: np.ndarray | None, dim: int,
    adapter_hidden: int | None, adapter_dropout: float, info: dict[str, Any], notes: list[str],
) -> SemanticTable:
    if reduced is not None:
        if not kcfg.semantic_norm > 0:
            raise ConfigError(f"knowledge.semantic_norm: must be positive, got {kcfg.semantic_norm}")
        # PCA and projection scales vary with the encoder and the data: rows are rescaled to a set mean norm
        scaled, factor = _rescale_rows(reduced, kcfg.semantic_norm)
        info.update({"semantic_scale": factor, "semantic_trainable": not kcfg.freeze_semantic})
        return SemanticTable(scaled, trainable=not kcfg.freeze_semantic)
    adapter = make_adapter(reduction, table.shape[1], dim, hidden=adapter_hidden, dropout=adapter_dropout)
    info["semantic_trainable"] = False
    info["adapter_params"] = sum(p.numel() for p in adapter.parameters())
    if not kcfg.freeze_semantic:
        notes.append(f"with '{reduction}' the {table.shape[1]}-dim semantic table stays frozen; the adapter trains")
    return SemanticTable(_centre(table), adapter=adapter, adapter_dim=dim)
