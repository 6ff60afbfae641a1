"""`kirec`: the ID embedding fused with the item's reduced (or adapted) semantic vector by the registered fusion
mode `knowledge.fusion` (engine.semantic.fusion), the semantic side frozen or fine-tuned."""

from __future__ import annotations

from engine import registry
from engine.methods.base import ItemBuild, Method


class KirecMethod(Method):
    uses_fusion = True

    def item_representation(self, build: ItemBuild):
        from engine.semantic.fusion import semantic_table_for

        semantic = semantic_table_for(build)
        fusion = build.kcfg.fusion
        mode = registry.load("fusion", fusion)
        build.info["fusion"] = fusion
        if build.layer_norm and not mode.supports_layer_norm:
            build.notes.append(f"layer_norm applies to 'add' fusion only, not '{fusion}'")
        return mode(build.num_items, build.dim, semantic, layer_norm=build.layer_norm)
