"""`semantic-only` (LLMEmb-style): no ID table; items are their reduced or adapted semantic vectors alone."""

from __future__ import annotations

from engine.methods.base import ItemBuild, Method


class SemanticOnlyMethod(Method):
    def item_representation(self, build: ItemBuild):
        from engine.semantic.fusion import SemanticOnlyItems, semantic_table_for

        return SemanticOnlyItems(build.num_items, semantic_table_for(build))
