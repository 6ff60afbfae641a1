"""Every knowledge-injection mode: shapes, the padding row, frozen vs trainable parts, gradients, `init` scaling."""

import dataclasses

import numpy as np
import pytest
import torch

from engine.choices import FUSION_CHOICES
from engine.config import KnowledgeConfig, ModelConfig
from engine.models.base import IdEmbedding
from engine.semantic.fusion import FusedItems, SemanticOnlyItems, build_item_representation
from engine.semantic.reduction import reduce_table

NUM_ITEMS, E, D = 40, 24, 8


def semantic_table(seed=0):
    """Items in 4 clusters, with a common offset like sentence embeddings; row 0 = padding zeros."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, E)) * 2
    x = centres[np.arange(NUM_ITEMS) % 4] + 0.3 * rng.standard_normal((NUM_ITEMS, E)) + 1.0
    return np.vstack([np.zeros((1, E)), x]).astype(np.float32)


def kcfg(**changes):
    return dataclasses.replace(KnowledgeConfig(method="kirec"), **changes)


def build(**changes):
    return build_item_representation(kcfg(**changes), NUM_ITEMS, D, semantic_table(), seed=3)


ALL_MODES = (
    [
        dict(method="kirec", fusion=f, reduction=r, freeze_semantic=z)
        for f in FUSION_CHOICES
        for r in ("pca", "pca-whiten", "random", "adapter-linear", "adapter-mlp")
        for z in (True, False)
    ]
    + [
        dict(method="semantic-only", reduction=r, freeze_semantic=z)
        for r in ("pca", "random", "adapter-mlp")
        for z in (True, False)
    ]
    + [dict(method="init", reduction=r) for r in ("pca", "pca-whiten", "random")]
    + [dict(method="id")]
)


def mode_id(mode):
    return "-".join(str(v) for v in mode.values())


@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
def test_shapes_and_padding_row_stay_right_through_training(mode):
    items, info = build(**mode)
    assert (items.num_items, items.dim) == (NUM_ITEMS, D)
    seq = torch.tensor([[0, 0, 3, 7], [1, 2, 3, 40]])
    assert items(seq).shape == (2, 4, D)
    assert items.all_items().shape == (NUM_ITEMS + 1, D)
    params = [p for p in items.parameters() if p.requires_grad]
    assert info["trainable_params"] == sum(p.numel() for p in params)
    if params:  # a few steps move biases and LayerNorms away from zero; padding must not follow
        opt = torch.optim.Adam(params, lr=0.05)
        for _ in range(3):
            opt.zero_grad()
            (items(seq) * torch.randn(2, 4, D)).sum().backward()
            opt.step()
    items.eval()
    assert torch.all(items.all_items()[0] == 0)
    assert torch.all(items(seq)[0, :2] == 0)
    assert items.device == torch.device("cpu")


@pytest.mark.parametrize("reduction", ["pca", "random"])
def test_frozen_semantic_table_is_a_buffer_and_fine_tuned_one_a_parameter(reduction):
    frozen, info = build(reduction=reduction, freeze_semantic=True)
    assert "semantic.weight" in dict(frozen.named_buffers())
    assert "semantic.weight" not in dict(frozen.named_parameters())
    assert info["semantic_trainable"] is False and info["frozen_values"] == (NUM_ITEMS + 1) * D
    tuned, info = build(reduction=reduction, freeze_semantic=False)
    assert dict(tuned.named_parameters())["semantic.weight"].requires_grad
    assert info["semantic_trainable"] is True
    assert info["trainable_params"] - build(reduction=reduction)[1]["trainable_params"] == (NUM_ITEMS + 1) * D


@pytest.mark.parametrize("reduction", ["adapter-linear", "adapter-mlp"])
def test_adapters_train_while_the_e_dim_table_stays_frozen(reduction):
    items, info = build(reduction=reduction, freeze_semantic=False)
    buffers = dict(items.named_buffers())
    assert buffers["semantic.weight"].shape == (NUM_ITEMS + 1, E)
    adapter_params = [p for n, p in items.named_parameters() if n.startswith("semantic.adapter")]
    assert adapter_params and all(p.requires_grad for p in adapter_params)
    assert info["adapter_params"] == sum(p.numel() for p in adapter_params)
    assert "stays frozen" in info["notes"]
    items.all_items().pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter_params)


@pytest.mark.parametrize("fusion", FUSION_CHOICES)
def test_gradients_reach_the_id_table_and_the_mixing_layer(fusion):
    items, _ = build(fusion=fusion, reduction="pca")
    assert isinstance(items, FusedItems)
    (items.all_items() * torch.randn(NUM_ITEMS + 1, D)).sum().backward()
    grad = items.ids.weight.grad
    assert torch.all(grad[0] == 0)  # padding row never learns
    assert torch.all(grad[1:].abs().sum(dim=1) > 0)
    if fusion != "add":
        assert items.mix.weight.grad.abs().sum() > 0 and items.mix.bias.grad.abs().sum() > 0


def test_gate_mixes_id_and_semantic_per_dimension():
    items, _ = build(fusion="gate", reduction="pca")
    idx = torch.arange(1, NUM_ITEMS + 1)
    ids, sem = items.ids(idx), items.semantic(idx)
    gate = torch.sigmoid(items.mix(torch.cat([ids, sem], dim=-1)))
    torch.testing.assert_close(items(idx), gate * ids + (1 - gate) * sem)
    # pushing the gate bias to +inf selects the ID embedding, to -inf the semantic vector
    with torch.no_grad():
        items.mix.bias.fill_(50.0)
    torch.testing.assert_close(items(idx), ids, atol=1e-6, rtol=0)
    with torch.no_grad():
        items.mix.bias.fill_(-50.0)
    torch.testing.assert_close(items(idx), sem, atol=1e-6, rtol=0)


def test_gated_add_keeps_the_id_vector_and_gates_only_the_semantic_one():
    items, _ = build(fusion="gated-add", reduction="pca")
    idx = torch.arange(1, NUM_ITEMS + 1)
    ids, sem = items.ids(idx), items.semantic(idx)
    gate = torch.sigmoid(items.mix(torch.cat([ids, sem], dim=-1)))
    torch.testing.assert_close(items(idx), ids + gate * sem)
    with torch.no_grad():
        items.mix.bias.fill_(50.0)  # gate open: plain `add`
    torch.testing.assert_close(items(idx), ids + sem, atol=1e-6, rtol=0)
    with torch.no_grad():
        items.mix.bias.fill_(-50.0)  # gate shut: the ID embedding alone
    torch.testing.assert_close(items(idx), ids, atol=1e-6, rtol=0)


def test_add_fusion_sums_and_optionally_normalises():
    items, _ = build(fusion="add", reduction="random")
    idx = torch.arange(1, 6)
    torch.testing.assert_close(items(idx), items.ids(idx) + items.semantic(idx))
    normed, info = build_item_representation(kcfg(fusion="add"), NUM_ITEMS, D, semantic_table(), layer_norm=True)
    out = normed(idx)
    torch.testing.assert_close(out.mean(dim=-1), torch.zeros(5), atol=1e-5, rtol=0)
    _, info = build_item_representation(kcfg(fusion="gate"), NUM_ITEMS, D, semantic_table(), layer_norm=True)
    assert "layer_norm applies to 'add'" in info["notes"]


def test_semantic_vectors_are_rescaled_to_unit_mean_norm():
    items, info = build(reduction="pca-whiten")
    norms = items.semantic(torch.arange(1, NUM_ITEMS + 1)).norm(dim=1)
    assert norms.mean().item() == pytest.approx(1.0, rel=1e-4)
    assert info["semantic_scale"] > 0


@pytest.mark.parametrize("reduction", ["pca", "pca-whiten", "random"])
def test_init_rows_follow_the_semantic_vectors_at_the_id_init_scale(reduction):
    table = semantic_table()
    items, info = build_item_representation(kcfg(method="init", reduction=reduction), NUM_ITEMS, D, table, seed=3)
    assert type(items) is IdEmbedding
    weight = items.table.weight.detach().numpy()
    assert np.all(weight[0] == 0)
    assert weight[1:].std() == pytest.approx(0.02, rel=1e-3)
    reduced, _ = reduce_table(reduction, table, D, seed=3)
    assert np.corrcoef(weight[1:].ravel(), reduced[1:].ravel())[0, 1] > 0.999
    # item-to-item similarity survives: same-cluster items are closer than other-cluster items
    unit = weight[1:] / np.linalg.norm(weight[1:], axis=1, keepdims=True)
    cos = unit @ unit.T
    same = (np.arange(NUM_ITEMS)[:, None] % 4) == (np.arange(NUM_ITEMS)[None, :] % 4)
    off_diagonal = ~np.eye(NUM_ITEMS, dtype=bool)
    assert cos[same & off_diagonal].mean() > cos[~same].mean() + 0.3
    assert items.table.weight.requires_grad
    assert "freeze_semantic does not apply" in info["notes"]


def test_semantic_only_has_no_id_table():
    items, info = build(method="semantic-only", reduction="pca", freeze_semantic=True)
    assert isinstance(items, SemanticOnlyItems)
    assert info["trainable_params"] == 0 and list(items.parameters()) == []
    assert not any("ids" in name for name, _ in items.named_modules())
    assert info["explained_variance"] > 0.5  # 4 clusters dominate the variance


def test_id_method_is_the_plain_baseline_and_needs_no_semantic_vectors():
    items, info = build_item_representation(KnowledgeConfig(method="id"), NUM_ITEMS, D, None, seed=1)
    assert type(items) is IdEmbedding and info["trainable_params"] == (NUM_ITEMS + 1) * D


def test_construction_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, _ = build(reduction="adapter-mlp")
    b, _ = build(reduction="adapter-mlp")
    assert torch.rand(1) == expected_next
    a.eval(), b.eval()
    torch.testing.assert_close(a.all_items(), b.all_items())
    c, _ = build_item_representation(kcfg(reduction="adapter-mlp"), NUM_ITEMS, D, semantic_table(), seed=4)
    assert not torch.allclose(a.ids.weight, c.ids.weight)


def test_invalid_combinations_fail_with_clear_messages():
    table = semantic_table()
    with pytest.raises(ValueError, match="method 'init' needs one of pca, pca-whiten, random"):
        build(method="init", reduction="adapter-linear")
    with pytest.raises(ValueError, match="knowledge.fusion: unknown 'mul'"):
        build(fusion="mul")
    with pytest.raises(ValueError, match="knowledge.method: unknown 'llm'"):
        build(method="llm")
    with pytest.raises(ValueError, match="knowledge.reduction: unknown 'lda'"):
        build(reduction="lda")
    with pytest.raises(ValueError, match="needs semantic vectors"):
        build_item_representation(kcfg(), NUM_ITEMS, D, None)
    with pytest.raises(ValueError, match=r"expected shape \[41, E\]"):
        build_item_representation(kcfg(), NUM_ITEMS, D, table[1:])
    bad = table.copy()
    bad[0, 0] = 1.0
    with pytest.raises(ValueError, match="row 0 is the padding row"):
        build_item_representation(kcfg(), NUM_ITEMS, D, bad)


def test_random_reduction_with_init_is_allowed():
    items, info = build(method="init", reduction="random")
    assert info["reduction"] == "random" and "explained_variance" not in info


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_fused_items_plug_into_every_backbone(backbone):
    from engine.models.factory import build_model

    items, _ = build(fusion="gate", reduction="adapter-mlp")
    model = build_model(
        ModelConfig(backbone=backbone, hidden_size=D, num_layers=1, num_heads=2, max_len=6), NUM_ITEMS, items
    )
    scores = model.score_all(torch.tensor([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]]))
    assert scores.shape == (2, NUM_ITEMS + 1)
    scores[:, 1:].sum().backward()
    assert items.ids.weight.grad is not None and items.mix.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("norm", [0.16, 1.0, 3.0])
def test_fixed_semantic_rows_are_rescaled_to_the_configured_mean_norm(norm):
    items, info = build(fusion="add", reduction="pca", semantic_norm=norm)
    rows = items.semantic(torch.arange(1, NUM_ITEMS + 1))
    assert rows.norm(dim=1).mean().item() == pytest.approx(norm, rel=1e-4)
    assert info["semantic_scale"] > 0


def test_a_non_positive_semantic_norm_names_the_field():
    with pytest.raises(ValueError, match="knowledge.semantic_norm"):
        build(fusion="add", reduction="pca", semantic_norm=0.0)
