"""`init` (LLMInit, LLM2Sequential): an ID table initialised from the reduced semantic vectors, rescaled to the
ID embedding's init scale, then trained like any ID table. The reduction must be fitted before training."""

from __future__ import annotations

from engine.methods.base import ItemBuild, Method


class InitMethod(Method):
    fixed_reduction_only = True

    def item_representation(self, build: ItemBuild):
        import torch

        from engine.models.base import IdEmbedding
        from engine.semantic.fusion import ID_INIT_STD, reduced_for

        if build.reloading:  # the trained table is in the checkpoint
            return IdEmbedding(build.num_items, build.dim)
        reduced = reduced_for(build)
        std = float(reduced[1:].std())
        if std <= 0:
            raise ValueError(
                "semantic: every item's vector is identical after reduction; it cannot initialise the ID table"
            )
        items = IdEmbedding(build.num_items, build.dim)
        with torch.no_grad():
            items.table.weight.copy_(torch.from_numpy(reduced * (ID_INIT_STD / std)))
            items.table.weight[0].zero_()
        build.info["semantic_scale"] = ID_INIT_STD / std
        if build.kcfg.freeze_semantic:
            build.notes.append("freeze_semantic does not apply to 'init': the initialised ID table always trains")
        return items
