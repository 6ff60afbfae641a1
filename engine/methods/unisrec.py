"""`unisrec` (Hou et al., KDD 2022, "Towards Universal Sequence Representation Learning for Recommender Systems"),
its transductive fine-tuning trained from scratch on the target data: an item is its ID embedding plus the
MoE-enhanced parametric whitening adapter (engine.semantic.whitening) of its frozen text vector, and a sequence
scores items by cosine similarity divided by a temperature (engine.models.cosine).

Settings: knowledge.unisrec_experts (n_exps, 8), knowledge.unisrec_dropout (0.2), knowledge.unisrec_temperature
(0.07; 0 scores by plain dot products, as every other method). The adapter reads the semantic table as the encoder
gave it (no centring or reduction: learning the centre is the whitening bias's job); knowledge.reduction, fusion
and freeze_semantic do not apply. Not reproduced: the pre-training on other domains' sequences (its two
contrastive losses) and the inductive setting (text only, no ID table).
"""

from __future__ import annotations

from engine.methods.base import ItemBuild, Method


class UniSRecMethod(Method):
    takes_side_fields = False

    def config_problem(self, kcfg):
        return self.side_fields_problem(kcfg)  # the reduction is not used, so no reduction is refused

    def item_representation(self, build: ItemBuild):
        from engine.semantic.fusion import SemanticTable
        from engine.semantic.whitening import MoEWhitening, WhitenedIdItems

        kcfg = build.kcfg
        if build.reloading:  # the frozen text table is the checkpoint's buffer
            if "semantic.weight" not in build.stored:
                from engine.training.checkpoint import CheckpointError

                raise CheckpointError(
                    "checkpoint: method 'unisrec' needs items.semantic.weight, which it does not hold"
                )
            table = build.stored["semantic.weight"].detach().cpu().numpy()
        else:
            table = build.semantic
        adapter = MoEWhitening(table.shape[1], build.dim, experts=kcfg.unisrec_experts, dropout=kcfg.unisrec_dropout)
        semantic = SemanticTable(table, adapter=adapter, adapter_dim=build.dim)
        build.info.update(
            {
                "unisrec_experts": kcfg.unisrec_experts,
                "unisrec_temperature": kcfg.unisrec_temperature,
                "adapter_params": sum(p.numel() for p in adapter.parameters()),
            }
        )
        defaults = type(kcfg)()
        ignored = [
            key for key in ("reduction", "fusion", "freeze_semantic") if getattr(kcfg, key) != getattr(defaults, key)
        ]
        if ignored:
            build.notes.append(
                f"method 'unisrec' ignores knowledge.{', knowledge.'.join(ignored)}: the text table "
                "stays frozen and its adapter's output is added to the ID embedding"
            )
        return WhitenedIdItems(build.num_items, build.dim, semantic)

    def model(self, cfg, num_items, items):
        from engine.models.cosine import with_cosine_scores

        model = super().model(cfg, num_items, items)
        temperature = cfg.knowledge.unisrec_temperature
        return with_cosine_scores(model, temperature) if temperature > 0 else model
