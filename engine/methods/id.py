"""`id`: the plain baseline, one learned vector per item ID; no semantic table is made or read."""

from __future__ import annotations

from engine.methods.base import ItemBuild, Method


class IdMethod(Method):
    needs_semantic = False

    def item_representation(self, build: ItemBuild):
        from engine.models.base import IdEmbedding

        if build.semantic is not None:
            build.notes.append("semantic vectors ignored by method 'id'")
        return IdEmbedding(build.num_items, build.dim)
