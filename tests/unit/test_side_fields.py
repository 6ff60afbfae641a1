"""Structured side information (knowledge.side_fields): which values become tokens, which are kept, and what the
item vector becomes: the method's vector plus the mean of its kept values' embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.config import ConfigError, load_config
from engine.methods import check_method_config
from engine.models.base import IdEmbedding
from engine.semantic.side_fields import SideFieldItems, build_vocabulary, item_field_values

ITEMS = [
    None,  # padding row
    {"title": "OPI Nail Lacquer", "brand": "OPI", "categories": ["Makeup", "Nails", "Nails"], "price": "9.99"},
    {"title": "OPI Top Coat", "brand": " opi ", "categories": ["Makeup"], "description": "shiny"},
    {"title": "L&#39;Oreal Mascara", "brand": "L&#39;Oreal", "categories": ["Makeup", "Eyes"]},
    {"title": "No brand", "brand": "Unknown", "categories": []},
]


def test_raw_tokens_skip_free_text_and_empty_values_and_normalise_the_rest():
    rows = item_field_values(ITEMS, None, "raw")
    assert rows[0] == []
    assert rows[1] == ["brand=opi", "categories=makeup", "categories=nails"]  # repeated value once, no price
    assert rows[2] == ["brand=opi", "categories=makeup"]  # case and spaces do not split a value; no description
    assert rows[3] == ["brand=l'oreal", "categories=makeup", "categories=eyes"]  # entities unescaped
    assert rows[4] == []  # "Unknown" is no value


def test_attribute_tokens_are_kept_apart_from_raw_fields_and_need_the_attributes():
    attributes = [None, {"genres": ["Nails"]}, None, {"audience": "adults"}, {}]
    both = item_field_values(ITEMS, attributes, "both")
    assert both[1][-1] == "llm.genres=nails" and "categories=nails" in both[1]
    assert item_field_values(ITEMS, attributes, "attributes")[3] == ["llm.audience=adults"]
    with pytest.raises(ValueError, match="attributes"):
        item_field_values(ITEMS, None, "attributes")


def test_the_vocabulary_keeps_values_seen_on_enough_items():
    rows = item_field_values(ITEMS, None, "raw")
    two = build_vocabulary(rows, min_count=2)
    assert two.values == ("brand=opi", "categories=makeup")
    assert two.index.shape == (5, 2) and two.index.dtype == np.int64
    assert two.index.tolist() == [[0, 0], [1, 2], [1, 2], [2, 0], [0, 0]]
    assert two.items_covered == 3
    assert two.info()["side_values_per_field"] == {"brand": 1, "categories": 1}
    one = build_vocabulary(rows, min_count=1)
    assert one.size == 5 and one.items_covered == 3 and one.index[0].tolist() == [0, 0, 0]


def test_an_item_vector_is_its_base_vector_plus_the_mean_of_its_value_vectors():
    vocabulary = build_vocabulary(item_field_values(ITEMS, None, "raw"), min_count=2)
    base = IdEmbedding(4, 8)
    items = SideFieldItems(base, vocabulary.index, vocabulary.size, seed=3)
    values = items.side.weight.detach()
    with torch.no_grad():
        out = items(torch.tensor([[1, 3], [4, 0]]))
        table = items.all_items()
    ids = base.table.weight.detach()
    expected = torch.stack([ids[1] + (values[1] + values[2]) / 2, ids[3] + values[2]])
    assert torch.allclose(out[0], expected)
    assert torch.equal(out[1, 0], ids[4])  # no kept value: the base vector alone
    assert torch.equal(out[1, 1], torch.zeros(8))  # padding stays zero
    assert torch.allclose(table, items(torch.arange(5)).detach())
    assert torch.equal(values[0], torch.zeros(8)) and values[1:].std() > 0


def test_side_values_are_trained_and_seeded_apart_from_the_id_table():
    vocabulary = build_vocabulary(item_field_values(ITEMS, None, "raw"), min_count=2)
    items = SideFieldItems(IdEmbedding(4, 8), vocabulary.index, vocabulary.size, seed=0)
    items.all_items()[1:].sum().backward()
    assert items.side.weight.grad[1:].abs().sum() > 0 and items.base.table.weight.grad is not None
    again = SideFieldItems(IdEmbedding(4, 8), vocabulary.index, vocabulary.size, seed=0)
    other = SideFieldItems(IdEmbedding(4, 8), vocabulary.index, vocabulary.size, seed=1)
    assert torch.equal(again.side.weight, items.side.weight)
    assert not torch.equal(other.side.weight, items.side.weight)


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        ({"knowledge.side_fields": "genres"}, "knowledge.side_fields"),
        ({"knowledge.side_fields": "raw", "knowledge.side_min_count": 0}, "knowledge.side_min_count"),
    ],
)
def test_bad_side_settings_are_refused_by_name(flags, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(flags=flags)


@pytest.mark.parametrize("method", ["llm-esr", "unisrec"])
def test_methods_with_their_own_item_views_refuse_side_fields(method):
    cfg = load_config(flags={"knowledge.method": method, "knowledge.side_fields": "raw"})
    with pytest.raises(ConfigError, match=r"^knowledge\.side_fields: method .* side fields apply to id, kirec"):
        check_method_config(cfg)
    check_method_config(load_config(flags={"knowledge.method": method}))  # without them it is accepted
