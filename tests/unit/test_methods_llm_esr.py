"""`llm-esr` (engine.methods.llm_esr, engine.models.llm_esr): the dual view's shapes and padding, its causal
mask (cross-attention included), the collaborative table's PCA start, leak-free similar users, the distillation
term's weight, and a run through the registry whose reload scores identically."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.config import ConfigError, KnowledgeConfig, ModelConfig, load_config
from engine.data.dataset import SequenceDataset
from engine.methods import check_method_config, get_method
from engine.models.llm_esr import LLMESR, DualViewItems
from engine.models.losses import sequence_loss
from engine.models.sasrec import attention_mask
from engine.semantic.fusion import ID_INIT_STD, build_item_representation
from engine.semantic.reduction import reduce_table
from engine.training.distributed import TrainingStep
from test_methods_pinned import SMALL, write_table

NUM_ITEMS, E, D = 30, 24, 8


@pytest.fixture
def table(tmp_path):
    return np.load(write_table(tmp_path / "table.npy", NUM_ITEMS, E))


def build(table, distill_weight=0.0, similar_users=2, dropout=0.0, seed=3, teacher="step", residual=0.0):
    kcfg = KnowledgeConfig(
        method="llm-esr", reduction="pca", distill_weight=distill_weight, similar_users=similar_users
    )
    items, info = build_item_representation(kcfg, NUM_ITEMS, D, table, seed=seed)
    mcfg = ModelConfig(hidden_size=D, num_heads=2, num_layers=1, max_len=6, dropout=dropout)
    torch.manual_seed(seed)
    return LLMESR(items, mcfg, distill_weight, similar_users, teacher, residual), info


def test_shapes_padding_and_scores_are_the_sum_of_both_views(table):
    model, _ = build(table)
    model.eval()
    seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    hidden = model(seq)
    assert hidden.shape == (2, 5, 2 * D)
    assert torch.all(hidden[0, :2] == 0)  # padding positions are zero
    assert model.item_table().shape == (NUM_ITEMS + 1, 2 * D) and torch.all(model.item_table()[0] == 0)
    ids, sem = model.items.views(torch.arange(NUM_ITEMS + 1))
    h = hidden[:, -1]
    torch.testing.assert_close(model.score_all(seq), h[:, :D] @ ids.T + h[:, D:] @ sem.T)
    # left padding to any width changes nothing
    torch.testing.assert_close(model(torch.tensor([[0, 0, 0, 3, 4, 5]]))[0, -3:], hidden[0, -3:])


def test_the_causal_mask_holds_through_cross_attention_and_the_shared_encoder(table):
    model, _ = build(table)
    model.eval()
    seq = torch.tensor([[1, 2, 3, 4, 5, 6]])
    later = seq.clone()
    later[0, 3:] = torch.tensor([9, 10, 11])
    a, b = model(seq), model(later)
    torch.testing.assert_close(a[0, :3], b[0, :3])  # positions 0..2 do not see items 3..5
    assert not torch.allclose(a[0, 3:], b[0, 3:])


def test_a_residual_adds_each_positions_own_view_back_and_keeps_the_mask(table):
    seq = torch.tensor([[1, 2, 3, 4, 5, 6]])
    plain, _ = build(table)
    with_own, _ = build(table, residual=1.0)
    with_own.load_state_dict(plain.state_dict())
    plain.eval(), with_own.eval()
    assert not torch.allclose(plain(seq), with_own(seq))
    ids, sem = (with_own._embed(v) for v in with_own.items.views(seq))
    allowed = attention_mask(seq != 0, causal=True)
    cross = torch.cat([with_own.llm2id(sem, ids, allowed) + ids, with_own.id2llm(ids, sem, allowed) + sem])
    expected = with_own._encode(cross, (seq != 0).repeat(2, 1))
    torch.testing.assert_close(with_own(seq), torch.cat(expected.chunk(2), dim=-1))
    later = seq.clone()
    later[0, 3:] = torch.tensor([9, 10, 11])
    torch.testing.assert_close(with_own(seq)[0, :3], with_own(later)[0, :3])


def test_the_collaborative_table_starts_as_the_scaled_pca_and_the_semantic_table_is_frozen(table):
    model, info = build(table)
    reduced, _ = reduce_table("pca", table.astype(np.float32), D, 3)
    expected = reduced * (ID_INIT_STD / reduced[1:].std())
    torch.testing.assert_close(model.items.ids.weight[1:], torch.from_numpy(expected[1:]).float())
    assert torch.all(model.items.ids.weight[0] == 0)
    assert info["semantic_scale"] == pytest.approx(ID_INIT_STD / reduced[1:].std())
    assert "items.semantic.weight" in model.state_dict()  # a buffer: in the checkpoint, not trained
    assert all(not name.startswith("items.semantic.weight") for name, _ in model.named_parameters())
    assert model.items.ids.weight.requires_grad


def test_its_own_modules_start_xavier_whatever_the_backbones_init(table):
    model, _ = build(table)  # ModelConfig's default init: N(0, 0.02) for the shared encoder
    for linear in (model.llm2id.q, model.id2llm.v, model.llm2id.out, model.items.semantic.adapter[0]):
        fan_out, fan_in = linear.weight.shape
        xavier = (2 / (fan_in + fan_out)) ** 0.5
        assert float(linear.weight.detach().std()) == pytest.approx(
            xavier, rel=0.35
        )  # far from 0.02 (xavier >= 0.12 here)
    assert torch.all(model.llm2id.out.bias == 0)


def sequences(seed=0, users=12):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, NUM_ITEMS + 1, size=int(rng.integers(4, 9))) for _ in range(users)]


def dataset_of(seqs):
    return SequenceDataset(
        "t",
        ["[PAD]"] + [f"i{i}" for i in range(NUM_ITEMS)],
        [f"u{u}" for u in range(len(seqs))],
        [np.asarray(s, dtype=np.int64) for s in seqs],
        [{}] * (NUM_ITEMS + 1),
        "fp",
    )


def neighbours_for(table, seqs, **kwargs):
    model, _ = build(table, distill_weight=0.5, similar_users=3, **kwargs)
    get_method("llm-esr").prepare_training(model, dataset_of(seqs))
    return model


def test_similar_users_come_from_training_histories_only(table):
    seqs = sequences()
    before = neighbours_for(table, seqs)._neighbours
    changed = [s.copy() for s in seqs]
    for s in changed:  # every user's validation and test items change
        s[-2:] = (s[-2:] % NUM_ITEMS) + 1
    after = neighbours_for(table, changed)._neighbours
    assert torch.equal(before, after)
    assert before.shape == (len(seqs), 3)
    assert all(u not in before[u].tolist() for u in range(len(seqs)))  # never oneself
    trained = [s.copy() for s in seqs]
    trained[0][0] = (trained[0][0] % NUM_ITEMS) + 1  # a training item does count
    trained[0][1] = (trained[0][1] % NUM_ITEMS) + 1
    trained[0][2] = (trained[0][2] % NUM_ITEMS) + 1
    assert not torch.equal(neighbours_for(table, trained)._neighbours, before)


def test_the_distillation_term_is_off_at_alpha_zero_and_weighted_by_alpha_otherwise(table):
    seqs = sequences()
    off, _ = build(table, distill_weight=0.0)
    assert off.extra_loss_term() is None and TrainingStep(off, "ce", 1, None).extra_loss is None
    alpha = 0.7
    model = neighbours_for(table, seqs)
    model.distill_weight = alpha
    model.eval()  # no dropout: the same hidden states in both computations
    rows = [s[:-2] for s in seqs]  # what the trainer feeds: the training sequence, input s[:-1], target s[1:]
    inputs = torch.zeros(len(rows), 6, dtype=torch.long)
    targets = torch.zeros_like(inputs)
    for r, s in enumerate(rows):
        inputs[r, 6 - len(s) + 1 :] = torch.from_numpy(s[:-1][-6:])
        targets[r, 6 - len(s) + 1 :] = torch.from_numpy(s[1:][-6:])
    total = TrainingStep(model, "ce", 1, None)(inputs, targets)
    hidden = model(inputs)
    plain = sequence_loss("ce", hidden, targets, model)
    term = model.distillation_loss(inputs, hidden)
    assert term > 0
    torch.testing.assert_close(total, plain + alpha * term)
    # the teacher of user 0 is the mean of its neighbours' last hidden states
    neighbours = model._neighbours[0]
    teacher = model(model._teacher_inputs[neighbours])[:, -1].mean(dim=0)
    torch.testing.assert_close(
        model.distillation_loss(inputs[:1], hidden[:1]), torch.mean((hidden[0, -1] - teacher) ** 2)
    )


def training_rows(seqs, width=6):
    """The trainer's input rows for these users: each training sequence (s[:-2]) without its last item."""
    inputs = torch.zeros(len(seqs), width, dtype=torch.long)
    for r, s in enumerate(seqs):
        row = s[:-2][:-1][-width:]
        inputs[r, width - len(row) :] = torch.from_numpy(row)
    return inputs


def test_epoch_teachers_are_encoded_once_without_dropout_and_reused_through_the_epoch(table):
    seqs = sequences()
    model = neighbours_for(table, seqs, dropout=0.5, teacher="epoch")
    inputs = training_rows(seqs)
    model.train()
    with pytest.raises(RuntimeError, match="start_epoch"):
        model.distillation_loss(inputs, model(inputs))
    model.start_epoch()
    assert model.training  # the trainer's mode is given back
    states = model._teacher_states
    assert torch.equal(model.teacher_states(), states)  # eval mode: no dropout noise in the teachers
    model.eval()
    neighbours = model._neighbours[0]
    expected = model(model._teacher_inputs[neighbours])[:, -1].mean(dim=0)
    model.train()
    torch.manual_seed(0)
    hidden = model(inputs[:1])
    torch.testing.assert_close(model.distillation_loss(inputs[:1], hidden), torch.mean((hidden[0, -1] - expected) ** 2))
    with torch.no_grad():  # a step changes the weights: the teachers stay those of the epoch's start
        model.items.ids.weight.add_(0.5)
    hidden = model(inputs[:1])
    torch.testing.assert_close(model.distillation_loss(inputs[:1], hidden), torch.mean((hidden[0, -1] - expected) ** 2))
    step = neighbours_for(table, seqs, dropout=0.5)  # the paper's teachers follow the weights
    step.load_state_dict(model.state_dict())
    step.eval()
    assert not torch.allclose(step.distillation_loss(inputs[:1], hidden), model.distillation_loss(inputs[:1], hidden))
    model.start_epoch()
    assert not torch.allclose(model._teacher_states, states)  # the next epoch re-encodes them


def test_the_trainer_starts_every_epoch_with_the_models_hook(tiny_dataset, tmp_path, one_torch_thread, monkeypatch):
    from engine.pipeline import run_experiment

    calls = []
    original = LLMESR.start_epoch

    def counted(self):
        original(self)
        calls.append(self._teacher_states is not None)

    monkeypatch.setattr(LLMESR, "start_epoch", counted)
    cfg = load_config(
        flags={
            **SMALL,
            "train.epochs": 3,
            "train.patience": 3,
            "knowledge.method": "llm-esr",
            "knowledge.similar_users": 2,
            "knowledge.distill_teacher": "epoch",
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.semantic_table": str(write_table(tmp_path / "table.npy", 30)),
        }
    )
    result = run_experiment(cfg, cwd=tmp_path)
    assert result.status == "FINISHED"
    assert calls == [True, True, True]  # once an epoch, and each time the teachers were encoded


def test_a_tiny_run_through_the_registry_and_its_reload_give_identical_scores(tiny_dataset, tmp_path, one_torch_thread):
    from engine.pipeline import run_experiment
    from engine.store import open_store
    from engine.trained import load_trained_run

    path = write_table(tmp_path / "table.npy", 30)
    cfg = load_config(
        flags={
            **SMALL,
            "train.epochs": 2,
            "knowledge.method": "llm-esr",
            "knowledge.similar_users": 2,
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.semantic_table": str(path),
        }
    )
    result = run_experiment(cfg, cwd=tmp_path)
    assert result.status == "FINISHED"
    with open_store(tmp_path / "runs.db") as store:
        reloaded = load_trained_run(store, result.run_id, cwd=tmp_path)
        params = store.get_run(result.run_id).params
    assert isinstance(reloaded.model, LLMESR)
    ds = reloaded.dataset
    seq = torch.tensor(
        np.stack(
            [np.pad(ds.test_history(u)[-10:], (10 - len(ds.test_history(u)[-10:]), 0)) for u in range(ds.num_users)]
        )
    )
    scores = reloaded.model.score_all(seq)
    from engine.evaluation.evaluator import RankingEvaluator

    test = RankingEvaluator(ds, "test", cfg.eval, cfg.model.max_len).evaluate(reloaded.model, torch.device("cpu"))
    assert test["NDCG@10"] == pytest.approx(result.test["NDCG@10"], abs=1e-9)
    again = load_trained_run(open_store(tmp_path / "runs.db"), result.run_id, cwd=tmp_path).model.score_all(seq)
    assert torch.equal(scores, again)
    assert int(params["model.parameters"]) > 0


def test_bad_settings_are_refused_with_the_field_named(tiny_dataset, tmp_path):
    base = {"data.dataset": str(tiny_dataset), "knowledge.method": "llm-esr"}
    with pytest.raises(ConfigError, match="knowledge.distill_weight"):
        load_config(flags={**base, "knowledge.distill_weight": -0.1})
    with pytest.raises(ConfigError, match="knowledge.similar_users"):
        load_config(flags={**base, "knowledge.similar_users": 0})
    with pytest.raises(ConfigError, match="knowledge.distill_teacher"):
        load_config(flags={**base, "knowledge.distill_teacher": "batch"})
    with pytest.raises(ConfigError, match="knowledge.llm_esr_residual"):
        load_config(flags={**base, "knowledge.llm_esr_residual": -1.0})
    with pytest.raises(ConfigError, match="knowledge.reduction: 'adapter-mlp' is trained with the model"):
        check_method_config(load_config(flags={**base, "knowledge.reduction": "adapter-mlp"}))
    table = write_table(tmp_path / "t.npy", NUM_ITEMS, E)
    items, _ = build_item_representation(KnowledgeConfig(method="llm-esr"), NUM_ITEMS, 16, np.load(table))
    cfg = load_config(flags={**base, "model.backbone": "gru4rec"})
    with pytest.raises(ConfigError, match="model.backbone"):
        get_method("llm-esr").model(cfg, NUM_ITEMS, items)
    assert isinstance(items, DualViewItems) and dataclasses.is_dataclass(cfg)
