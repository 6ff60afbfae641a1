"""The semantic side of knowledge injection: item texts → text encoder (cached) → reduction → fusion with IDs.

Typical wiring (engine.knowledge):

    texts = item_texts(dataset.item_text, attributes, kcfg.embed_text)
    encoder = make_encoder(kcfg.encoder, kcfg.llm_model, device)
    with EmbeddingCache(Workspace.of(cfg).embedding_cache) as cache:
        table, stats = embed_item_table(texts.texts, encoder, cache, on_progress=...)
    items, info = build_item_representation(kcfg, dataset.num_items, cfg.model.hidden_size, table, seed)

Names are exported lazily, so that importing the light modules (texts, the cache) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "embedding_cache": ("EmbeddingCache", "EmbedStats", "embed_item_table", "embed_texts"),
    "encoders": (
        "EncoderError",
        "LlamaCppEncoder",
        "SentenceTransformerEncoder",
        "TextEncoder",
        "TransformersMeanPoolEncoder",
        "make_encoder",
    ),
    "adapters": ("LinearAdapter", "MLPAdapter"),
    "fusion": (
        "AddFusion",
        "ConcatFusion",
        "FusedItems",
        "GateFusion",
        "GatedAddFusion",
        "SemanticOnlyItems",
        "SemanticTable",
        "build_item_representation",
        "fused_items",
        "semantic_table_for",
    ),
    "reduction": (
        "FittedReduction",
        "PCA",
        "RandomProjection",
        "WhitenedPCA",
        "fit_pca",
        "fit_random_projection",
        "fit_reduction",
        "make_adapter",
        "reduce_table",
    ),
    "texts": ("ItemTexts", "item_texts", "render_attribute_text", "render_raw_text"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.semantic' has no attribute '{name}'")
    return getattr(importlib.import_module(f"engine.semantic.{module}"), name)
