"""Item representations that inject semantic vectors, selected by `knowledge.method`:

- `id`: the plain ID table (baseline);
- `kirec`: ID embedding fused with the reduced semantic vector by `add`, `concat` (+ Linear 2D→D), `gate`
  (g = σ(W[id; sem] + b), out = g·id + (1−g)·sem) or `gated-add` (out = id + g·sem), the semantic side frozen
  or fine-tuned;
- `init`: an ID table initialised from the reduced semantic vectors (LLMInit, LLM2Sequential);
- `semantic-only`: no ID table, the reduced or adapted semantic vectors alone (LLMEmb).

Each method is a module of engine.methods and each fusion mode a `FusedItems` subclass here, both registered
in engine.registry (a name is looked up there, never compared in an if-chain). The backbones only see
`ItemRepresentation`, so none of this touches them. Row 0 (padding) is zero in every mode:
fused outputs are multiplied by a padding mask, because biases, LayerNorm and adapters map a zero input elsewhere.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import registry
from engine.config import ConfigError, KnowledgeConfig
from engine.models.base import ItemRepresentation
from engine.semantic.reduction import reduce_table

if TYPE_CHECKING:
    from engine.methods.base import ItemBuild

ID_INIT_STD = 0.02  # IdEmbedding's init scale, which `init` rescales the semantic vectors to


class SemanticTable(nn.Module):
    """Reduced semantic vectors [..., D] for item indices: a fixed table (a buffer when frozen, a parameter when
    fine-tuned) or a frozen E-dim table passed through a trainable adapter."""

    def __init__(
        self, table: np.ndarray, trainable: bool = False, adapter: nn.Module | None = None, adapter_dim: int = 0
    ):
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
    """An ID embedding fused with a semantic vector of the same size D; each fusion mode is one subclass
    (registered in engine.registry) that builds its mixing layers and combines the two vectors."""

    supports_layer_norm = False  # only `add` normalises its sum

    def __init__(self, num_items: int, dim: int, semantic: SemanticTable, layer_norm: bool = False):
        super().__init__()
        if type(self) is FusedItems:
            raise TypeError("FusedItems is the base of the fusion modes; build one with fused_items(name, ...)")
        if semantic.dim != dim:
            raise ValueError(f"fusion: semantic vectors have {semantic.dim} dims, the ID embedding {dim}")
        self.num_items, self.dim = num_items, dim
        self.ids = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=ID_INIT_STD)
        with torch.no_grad():
            self.ids.weight[0].zero_()
        self.semantic = semantic
        self.norm: nn.Module | None = None
        self.mix: nn.Linear | None = None
        self.build_mixing(dim, layer_norm)  # after ids and semantic: the seeded initialisation order is kept

    def build_mixing(self, dim: int, layer_norm: bool) -> None:
        """Creates the mode's own layers (as attributes: their state-dict names are part of the checkpoints)."""

    def combine(self, ids: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        out = self.combine(self.ids(items), self.semantic(items))
        return out * _padding_mask(items, out)


class AddFusion(FusedItems):
    """out = id + sem, optionally layer-normalised."""

    supports_layer_norm = True

    def build_mixing(self, dim: int, layer_norm: bool) -> None:
        self.norm = nn.LayerNorm(dim) if layer_norm else None

    def combine(self, ids: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        out = ids + sem
        return self.norm(out) if self.norm is not None else out


class ConcatFusion(FusedItems):
    """out = Linear([id; sem]), 2D → D."""

    def build_mixing(self, dim: int, layer_norm: bool) -> None:
        self.mix = nn.Linear(2 * dim, dim)

    def combine(self, ids: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([ids, sem], dim=-1))


class GateFusion(FusedItems):
    """Per-dimension weights g = σ(W[id; sem] + b), zero bias so g starts near 0.5; out = g·id + (1−g)·sem."""

    def build_mixing(self, dim: int, layer_norm: bool) -> None:
        self.mix = nn.Linear(2 * dim, dim)
        nn.init.zeros_(self.mix.bias)

    def gate(self, ids: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mix(torch.cat([ids, sem], dim=-1)))

    def combine(self, ids: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        gate = self.gate(ids, sem)
        return gate * ids + (1 - gate) * sem


class GatedAddFusion(GateFusion):
    """The whole ID vector plus the gated semantic one: out = id + g·sem (the gate as in `gate`)."""

    def combine(self, ids: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        return ids + self.gate(ids, sem) * sem


def fused_items(fusion: str, num_items: int, dim: int, semantic: SemanticTable, layer_norm: bool = False) -> FusedItems:
    """The registered fusion mode `fusion` (knowledge.fusion) around `semantic`; an unknown name is a ConfigError."""
    from engine import registry

    return registry.load("fusion", fusion)(num_items, dim, semantic, layer_norm=layer_norm)


# --- construction from the configuration ------------------------------------------------------------------------


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
        raise ValueError(
            "semantic: all items have the same vector (zero after centring or reduction); nothing to inject"
        )
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
    stored: Mapping[str, torch.Tensor] | None = None,
) -> tuple[ItemRepresentation, dict[str, Any]]:
    """The item representation of the registered method `kcfg.method`, of width `dim`, and info for the run record.

    `semantic` is [num_items + 1, E] with row 0 = padding zeros (ignored for `id`). Module initialisation is
    seeded by `seed` without disturbing the global torch RNG. `layer_norm` applies to `add` fusion only.
    `stored` (a finished run's checkpoint tensors under `items.`, prefix removed) builds the same modules
    without a semantic table or any reduction: the caller then loads the checkpoint into them.
    """
    from engine.methods import ItemBuild, get_method

    method = get_method(kcfg.method)
    build = ItemBuild(
        kcfg,
        num_items,
        dim,
        None,
        seed,
        layer_norm,
        adapter_hidden,
        adapter_dropout,
        stored,
        info={"method": kcfg.method, "dim": dim},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if method.needs_semantic:
            if stored is None:
                build.semantic = _check_semantic(semantic, num_items, kcfg.method)
            reduction = registry.entry("reduction", kcfg.reduction)
            if stored is None:
                build.info.update({"reduction": reduction.name, "semantic_dim": int(build.semantic.shape[1])})
            problem = method.config_problem(kcfg)  # the check the config makes at load, for direct callers
            if problem is not None:
                raise ConfigError(": ".join(problem))
        else:
            build.semantic = semantic
        items = method.item_representation(build)
    build.info.update(_counts(items))
    if build.notes:
        build.info["notes"] = "; ".join(build.notes)
    return items, build.info


def reduced_for(build: "ItemBuild") -> np.ndarray:
    """The fixed reduction `knowledge.reduction` of the build's table to D dims (fitted now; records its info)."""
    reduced, fitted = reduce_table(build.kcfg.reduction, build.semantic, build.dim, build.seed)
    build.info.update(fitted.info())
    build.notes.extend(fitted.notes)
    return reduced


def semantic_table_for(build: "ItemBuild") -> SemanticTable:
    """The semantic side of a method: the fixed reduction's rows rescaled to `semantic_norm` (a buffer when frozen, a
    parameter when fine-tuned), or the centred E-dim table, frozen, through a trainable adapter. Reloading, the
    table is the checkpoint's (already reduced or centred) and nothing is fitted."""
    kcfg, dim = build.kcfg, build.dim
    reduction = registry.entry("reduction", kcfg.reduction)
    adapter_class = reduction.load() if reduction.group == "adapter" else None
    if build.stored is not None:
        if "semantic.weight" not in build.stored:
            from engine.training.checkpoint import CheckpointError

            raise CheckpointError(
                f"checkpoint: method '{kcfg.method}' needs items.semantic.weight, which it does not hold"
            )
        table = build.stored["semantic.weight"].detach().cpu().numpy()
        adapter = (
            adapter_class(table.shape[1], dim, hidden=build.adapter_hidden, dropout=build.adapter_dropout)
            if adapter_class is not None
            else None
        )
        return SemanticTable(
            table,
            trainable=adapter is None and not kcfg.freeze_semantic,
            adapter=adapter,
            adapter_dim=dim if adapter is not None else 0,
        )
    if adapter_class is None:
        reduced = reduced_for(build)
        if not kcfg.semantic_norm > 0:
            raise ConfigError(f"knowledge.semantic_norm: must be positive, got {kcfg.semantic_norm}")
        # PCA and projection scales vary with the encoder and the data: rows are rescaled to a set mean norm
        scaled, factor = _rescale_rows(reduced, kcfg.semantic_norm)
        build.info.update({"semantic_scale": factor, "semantic_trainable": not kcfg.freeze_semantic})
        return SemanticTable(scaled, trainable=not kcfg.freeze_semantic)
    table = build.semantic
    adapter = adapter_class(table.shape[1], dim, hidden=build.adapter_hidden, dropout=build.adapter_dropout)
    build.info["semantic_trainable"] = False
    build.info["adapter_params"] = sum(p.numel() for p in adapter.parameters())
    if not kcfg.freeze_semantic:
        build.notes.append(
            f"with '{reduction.name}' the {table.shape[1]}-dim semantic table stays frozen; the adapter trains"
        )
    return SemanticTable(_centre(table), adapter=adapter, adapter_dim=dim)
