"""The `unisrec` method (engine.methods.unisrec): its MoE whitening adapter's arithmetic, the padding row, the gate's
noise (training only), cosine scores / temperature, a tiny run through the registry and its reload from the
checkpoint alone, and the range checks of its settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.config import ConfigError, KnowledgeConfig, load_config
from engine.evaluation.evaluator import RankingEvaluator
from engine.models.losses import sequence_loss
from engine.models.sasrec import SASRec
from engine.pipeline import run_experiment
from engine.semantic.fusion import build_item_representation
from engine.semantic.whitening import MoEWhitening
from engine.store import open_store
from engine.trained import load_trained_run
from test_methods_pinned import SMALL, write_table
from test_trained_reload import forbid_knowledge_pipeline

NUM_ITEMS, E, D = 12, 6, 4


def two_expert_adapter() -> MoEWhitening:
    """E = 3 -> D = 2, two experts with known biases, projections and gate weights."""
    adapter = MoEWhitening(3, 2, experts=2, dropout=0.0)
    with torch.no_grad():
        adapter.experts[0].bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
        adapter.experts[0].lin.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]))  # [D, E] = W_0^T
        adapter.experts[1].bias.copy_(torch.tensor([0.0, 0.5, 0.0]))
        adapter.experts[1].lin.weight.copy_(torch.tensor([[0.0, -1.0, 0.0], [3.0, 0.0, 1.0]]))
        adapter.w_gate.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5]]))
        adapter.w_noise.copy_(torch.ones(3, 2))  # only ever read in training
    return adapter


def test_the_adapter_is_the_gated_sum_of_whitened_projections_by_hand():
    adapter = two_expert_adapter().eval()
    x = [2.0, 1.0, 0.0]
    # expert 0: x - b = [1, 1, 1] -> [1 + 2, 1] = [3, 1]; expert 1: x - b = [2, 0.5, 0] -> [-0.5, 6]
    # gate logits: x @ W_g = [2, 1] -> softmax = [e/(e+1), 1/(e+1)]
    g0, g1 = math.e / (math.e + 1), 1 / (math.e + 1)
    expected = [g0 * 3 + g1 * -0.5, g0 * 1 + g1 * 6]
    out = adapter(torch.tensor([x, [1.0, 0.0, -1.0]]))
    assert out[0].tolist() == pytest.approx(expected, rel=1e-6)
    # x = b_0: expert 0 gives zero; expert 1: x - b = [1, -0.5, -1] -> [0.5, 2]; logits [0.5, 0.5] -> even weights
    assert out[1].tolist() == pytest.approx([0.5 * 0.5, 0.5 * 2], rel=1e-6)


def test_the_gate_is_noisy_in_training_only():
    adapter = two_expert_adapter()
    x = torch.tensor([[2.0, 1.0, 0.0]] * 64)
    clean = torch.softmax(x @ adapter.w_gate, dim=-1)
    adapter.eval()
    assert torch.equal(adapter.gates(x), clean) and torch.equal(adapter(x), adapter(x))
    adapter.train()
    torch.manual_seed(0)
    noisy = adapter.gates(x)
    assert not torch.allclose(noisy, clean, atol=1e-3)  # each row its own noise
    assert torch.allclose(noisy.sum(-1), torch.ones(64))
    assert noisy.std(dim=0).min() > 0.01


def unisrec_items(**settings):
    table = np.vstack([np.zeros((1, E)), np.random.default_rng(0).standard_normal((NUM_ITEMS, E))]).astype(np.float32)
    return build_item_representation(KnowledgeConfig(method="unisrec", **settings), NUM_ITEMS, D, table, seed=1)


def test_items_are_id_plus_adapted_text_and_the_padding_row_stays_zero():
    items, info = unisrec_items(unisrec_experts=3)
    assert info["unisrec_experts"] == 3 and len(items.semantic.adapter.experts) == 3
    assert [name for name, _ in items.named_buffers()] == ["semantic.weight"]  # the frozen text table
    with torch.no_grad():  # as after training: a zero text row no longer maps to zero through (x - b) W
        for expert in items.semantic.adapter.experts:
            expert.bias.normal_()
    assert torch.all(items.semantic(torch.tensor([0])) != 0)
    idx = torch.tensor([[0, 3, 0, 7]])
    for mode in (items.train, items.eval):
        mode()
        torch.manual_seed(0)
        out = items(idx)
        assert torch.all(out[0, [0, 2]] == 0) and torch.all(out[0, [1, 3]] != 0)
        assert torch.all(items.all_items()[0] == 0)
    items.eval()
    expected = items.ids.weight[[3, 7]] + items.semantic.adapter(items.semantic.weight[[3, 7]])
    torch.testing.assert_close(items(torch.tensor([3, 7])), expected)
    # a batch is adapted once per distinct item: in evaluation mode the same as once per position
    batch = torch.tensor([[7, 3, 7], [0, 12, 3]])
    per_position = torch.stack([torch.stack([items(i.view(1))[0] for i in row]) for row in batch])
    torch.testing.assert_close(items(batch), per_position)


def test_cosine_scores_are_normalised_and_divided_by_the_temperature():
    from engine.methods import build_run_model

    def model_for(temperature):
        cfg = load_config(
            flags={
                **SMALL,
                "model.hidden_size": D,
                "model.num_heads": 1,
                "knowledge.method": "unisrec",
                "knowledge.unisrec_temperature": temperature,
            }
        )
        return build_run_model(cfg, NUM_ITEMS, items)

    items, _ = unisrec_items()
    model = model_for(0.5).eval()
    seq = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]])
    with torch.no_grad():
        raw = SASRec.forward(model, seq)[:, -1]  # the plain backbone's state
        expected = F.normalize(raw, dim=-1) @ F.normalize(items.all_items(), dim=-1).T / 0.5
        torch.testing.assert_close(model.score_all(seq), expected)
        assert torch.all(model.item_table()[0] == 0)
        rows = torch.tensor([1, 5, 12])
        torch.testing.assert_close(model.item_rows(rows), model.item_table()[rows])  # the sampled losses' rows
    targets = torch.tensor([[0, 2, 3, 4, 9], [5, 6, 7, 8, 1]])
    hidden = model(seq)
    for loss in ("bce", "sampled-softmax"):  # the sampled losses score the same normalised rows as item_table
        through_model = sequence_loss(loss, hidden, targets, model, 2, torch.Generator().manual_seed(3))
        through_table = sequence_loss(loss, hidden, targets, model.item_table(), 2, torch.Generator().manual_seed(3))
        torch.testing.assert_close(through_model, through_table)
    plain = model_for(0)
    assert type(plain) is SASRec


def test_a_unisrec_run_reloads_from_its_checkpoint_alone_and_scores_as_trained(
    tiny_dataset, tmp_path, monkeypatch, one_torch_thread
):
    import engine.methods

    trained = []
    build = engine.methods.build_run_model
    monkeypatch.setattr(
        engine.methods, "build_run_model", lambda *a, **k: trained.append(build(*a, **k)) or trained[-1]
    )
    cfg = load_config(
        flags={
            **SMALL,
            "knowledge.method": "unisrec",
            "knowledge.unisrec_experts": 4,
            "knowledge.unisrec_temperature": 0.1,
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.semantic_table": str(write_table(tmp_path / "table.npy", 30)),
        }
    )
    result = run_experiment(cfg, cwd=tmp_path)
    assert result.status == "FINISHED" and len(trained) == 1
    assert result.info["method"] == "unisrec" and result.info["unisrec_experts"] == 4
    model = trained[0].eval()
    assert type(model).__name__ == "CosineSASRec" and model.temperature == pytest.approx(0.1)
    (tmp_path / "table.npy").unlink()

    forbid_knowledge_pipeline(monkeypatch)
    with open_store(tmp_path / "runs.db") as store:
        run = load_trained_run(store, result.run_id, cwd=tmp_path)
    assert type(run.model) is type(model) and run.model.temperature == model.temperature
    assert len(run.model.items.semantic.adapter.experts) == 4
    histories = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5, 6, 7], [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]])
    with torch.no_grad():
        scores = run.model.score_all(histories)
        assert torch.equal(scores, model.score_all(histories))
        assert scores.abs().max() <= 1 / 0.1 + 1e-4  # cosines over the temperature
    test = RankingEvaluator(run.dataset, "test", cfg.eval, cfg.model.max_len).evaluate(run.model, "cpu")
    assert test == result.test


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("knowledge.unisrec_experts", 0, "must be at least 1, got 0"),
        ("knowledge.unisrec_dropout", 1.0, "must be in [0, 1), got 1.0"),
        ("knowledge.unisrec_dropout", -0.1, "must be in [0, 1), got -0.1"),
        (
            "knowledge.unisrec_temperature",
            -0.07,
            "must be 0 (plain dot products) or a positive finite number, got -0.07",
        ),
        (
            "knowledge.unisrec_temperature",
            math.nan,
            "must be 0 (plain dot products) or a positive finite number, got nan",
        ),
    ],
)
def test_a_unisrec_setting_out_of_range_is_one_line_naming_the_field(key, value, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides={key: value})
    assert str(info.value) == f"--set {key}: {message}"
