"""`llm-esr` (LLM-ESR, NeurIPS 2024): a frozen semantic view (the semantic table through a trainable adapter) and
a collaborative view (an ID table initialised from the scaled PCA of the same table), cross-attention between
them, one shared SASRec encoder, and self-distillation toward the users with the most similar training histories
(weight `knowledge.distill_weight`, `knowledge.similar_users` neighbours, teachers re-encoded every step or once an
epoch: `knowledge.distill_teacher`). See engine.models.llm_esr.

The main loss is the run's `train.loss` (the official code uses BCE with one negative), so every method of a
table is trained under one protocol; the collaborative view's initialisation is `knowledge.reduction` (pca)."""

from __future__ import annotations

from engine.methods.base import ItemBuild, Method


def official_adapter(table_dim: int, dim: int):
    """The official adapter: Linear(E, E/2) then Linear(E/2, D), no activation between."""
    from torch import nn

    return nn.Sequential(nn.Linear(table_dim, max(table_dim // 2, 1)), nn.Linear(max(table_dim // 2, 1), dim))


class LlmEsrMethod(Method):
    takes_side_fields = False
    fixed_reduction_only = True  # the ID table starts from a reduction fitted before training

    def item_representation(self, build: ItemBuild):
        from engine.models.llm_esr import DualViewItems
        from engine.semantic.fusion import ID_INIT_STD, SemanticTable, _centre, reduced_for

        if build.reloading:  # every value comes from the checkpoint
            if "semantic.weight" not in build.stored:
                from engine.training.checkpoint import CheckpointError

                raise CheckpointError(
                    "checkpoint: method 'llm-esr' needs items.semantic.weight, which it does not hold"
                )
            table = build.stored["semantic.weight"].detach().cpu().numpy()
            semantic = SemanticTable(table, adapter=official_adapter(table.shape[1], build.dim), adapter_dim=build.dim)
            return DualViewItems(build.num_items, build.dim, semantic)
        reduced = reduced_for(build)
        std = float(reduced[1:].std())
        if std <= 0:
            raise ValueError(
                "semantic: every item's vector is identical after reduction; it cannot initialise the ID table"
            )
        build.info["semantic_scale"] = ID_INIT_STD / std
        table = _centre(build.semantic)  # the frozen E-dim table, centred as for every adapter
        semantic = SemanticTable(table, adapter=official_adapter(table.shape[1], build.dim), adapter_dim=build.dim)
        build.info["adapter_params"] = sum(p.numel() for p in semantic.adapter.parameters())
        if not build.kcfg.freeze_semantic:
            build.notes.append("llm-esr keeps the semantic table frozen (its adapter trains)")
        return DualViewItems(build.num_items, build.dim, semantic, id_init=reduced * (ID_INIT_STD / std))

    def model(self, cfg, num_items, items):
        from engine.config import ConfigError
        from engine.models.llm_esr import LLMESR

        if cfg.model.backbone != "sasrec":
            raise ConfigError(f"model.backbone: method 'llm-esr' is built on sasrec, got '{cfg.model.backbone}'")
        k = cfg.knowledge
        return LLMESR(items, cfg.model, k.distill_weight, k.similar_users, k.distill_teacher, k.llm_esr_residual)

    def prepare_training(self, model, dataset) -> None:
        if model.extra_loss_term() is not None:  # no distillation (alpha = 0): nothing to retrieve
            model.prepare_distillation([dataset.train_sequence(u) for u in range(dataset.num_users)])
