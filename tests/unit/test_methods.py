"""The method interface (engine.methods): what each method declares, and that a new method or fusion mode is one
class plus its registry line, its extra loss term added by the trainer at every step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import engine.config
from engine import registry
from engine.config import KnowledgeConfig, load_config
from engine.events import EpochEnd, StepLoss
from engine.methods import get_method
from engine.methods.id import IdMethod
from engine.models.base import IdEmbedding
from engine.pipeline import run_experiment
from engine.semantic.fusion import FusedItems, build_item_representation
from test_methods_pinned import PINNED, SMALL

NUM_ITEMS, E, D = 12, 6, 4


def test_each_method_declares_what_it_needs():
    assert not get_method("id").needs_semantic
    assert all(get_method(name).needs_semantic for name in ("kirec", "init", "semantic-only"))
    assert get_method("init").fixed_reduction_only
    assert not get_method("kirec").fixed_reduction_only and not get_method("semantic-only").fixed_reduction_only


# --- a new fusion mode: one class and its registry line -----------------------------------------------------------


class MulFusion(FusedItems):
    """A fusion a newcomer adds: the element-wise product."""

    def combine(self, ids, sem):
        return ids * sem


def add_entry(monkeypatch, kind, name, target, choices_name=None):
    monkeypatch.setitem(registry._BY_KIND[kind], name, registry.Entry(kind, name, "added by a test", target))
    if choices_name:  # the config's validation reads its tuple, derived from the registry at import
        monkeypatch.setattr(engine.config, choices_name, registry.choices(kind))


def test_a_new_fusion_mode_is_one_class_and_a_registry_line(monkeypatch):
    add_entry(monkeypatch, "fusion", "mul", "test_methods:MulFusion")
    table = np.vstack([np.zeros((1, E)), np.random.default_rng(0).standard_normal((NUM_ITEMS, E))]).astype(np.float32)
    items, info = build_item_representation(KnowledgeConfig(fusion="mul"), NUM_ITEMS, D, table, seed=1)
    assert type(items) is MulFusion and info["fusion"] == "mul"
    idx = torch.arange(1, NUM_ITEMS + 1)
    torch.testing.assert_close(items(idx), items.ids(idx) * items.semantic(idx))
    assert torch.all(items(torch.tensor([0])) == 0)


# --- a new method with an extra loss term: one class and its registry line -----------------------------------------

EXTRA = 0.5
SEEN: list[tuple] = []


class IdPlusConstant(IdEmbedding):
    def extra_loss_term(self):
        def term(inputs, targets, hidden):
            SEEN.append((tuple(inputs.shape), tuple(targets.shape), tuple(hidden.shape)))
            return hidden.new_tensor(EXTRA)  # no gradient: training is the plain `id` run's, its loss 0.5 higher

        return term


class IdPlusConstantMethod(IdMethod):
    def item_representation(self, build):
        return IdPlusConstant(build.num_items, build.dim)


def test_a_new_methods_extra_loss_term_is_added_at_every_step(monkeypatch, tiny_dataset, tmp_path, one_torch_thread):
    add_entry(monkeypatch, "method", "id-plus-constant", "test_methods:IdPlusConstantMethod", "METHOD_CHOICES")
    SEEN.clear()
    cfg = load_config(
        flags={
            **SMALL,
            "knowledge.method": "id-plus-constant",
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
        }
    )
    events = []
    result = run_experiment(cfg, on_event=events.append, cwd=tmp_path)
    losses = [e.train_loss for e in events if isinstance(e, EpochEnd)]
    plain_losses, plain_ndcg, plain_hr, *_ = PINNED["id"]  # the same run without the term
    assert losses == pytest.approx([loss + EXTRA for loss in plain_losses], rel=1e-6)
    assert (result.test["NDCG@10"], result.test["HR@10"]) == pytest.approx((plain_ndcg, plain_hr), rel=1e-6)
    steps = [e for e in events if isinstance(e, StepLoss)]
    assert len(SEEN) == len(steps) > 1  # once a step, with the step's batch and the backbone's output for it
    assert all(
        inputs[0] <= SMALL["train.batch_size"]
        and inputs[1] <= SMALL["model.max_len"]
        and targets == inputs
        and hidden == (*inputs, SMALL["model.hidden_size"])
        for inputs, targets, hidden in SEEN
    )


class WiderModelMethod(IdMethod):
    """A method with its own model: the configured backbone with twice the layers."""

    def model(self, cfg, num_items, items):
        from engine.models.factory import build_model

        return build_model(dataclasses.replace(cfg.model, num_layers=2 * cfg.model.num_layers), num_items, items)


def test_a_method_may_build_its_own_model_and_the_run_and_its_reload_use_it(
    monkeypatch, tiny_dataset, tmp_path, one_torch_thread
):
    from engine.store import open_store
    from engine.trained import load_trained_run

    add_entry(monkeypatch, "method", "wider", "test_methods:WiderModelMethod", "METHOD_CHOICES")
    cfg = load_config(
        flags={
            **SMALL,
            "train.epochs": 1,
            "knowledge.method": "wider",
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
        }
    )
    result = run_experiment(cfg, cwd=tmp_path)
    with open_store(tmp_path / "runs.db") as store:
        params = store.get_run(result.run_id).params
        reloaded = load_trained_run(store, result.run_id, cwd=tmp_path)
    blocks = [m for m in reloaded.model.modules() if type(m).__name__ == "TransformerBlock"]
    assert len(blocks) == 2 * SMALL["model.num_layers"]  # the reload built the method's model, not the plain one
    plain = load_config(
        flags={
            **SMALL,
            "train.epochs": 1,
            "knowledge.method": "id",
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "plain.db"),
        }
    )
    plain_params = open_store(tmp_path / "plain.db").get_run(run_experiment(plain, cwd=tmp_path).run_id).params
    assert int(params["model.parameters"]) > int(plain_params["model.parameters"])


def test_a_methods_config_problem_is_found_without_torch():
    """What validation at load can ask of a method before any data is read: init with an adapter is refused."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom engine.config import KnowledgeConfig\nfrom engine.methods import get_method\n"
        "print(get_method('init').config_problem(KnowledgeConfig(method='init', reduction='adapter-mlp')))\n"
        "print([get_method(m).config_problem(KnowledgeConfig(method=m, reduction=r)) for m, r in "
        "(('init', 'pca'), ('kirec', 'adapter-mlp'), ('semantic-only', 'adapter-linear'), ('id', 'adapter-mlp'))])\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    problem, others, torch_loaded = out.stdout.strip().splitlines()
    assert problem.startswith("('knowledge.reduction', \"'adapter-mlp' is trained with the model")
    assert "method 'init' needs one of pca, pca-whiten, random" in problem
    assert others == "[None, None, None, None]" and torch_loaded == "False"
