"""Reloading a finished run builds its item representation from the checkpoint alone: no LLM extraction, no
encoder, no semantic table file, no reduction; and the reloaded model scores exactly as the trained one did."""

from __future__ import annotations

import pytest
import torch

import engine.extraction
import engine.extraction.backends
import engine.knowledge
import engine.methods
import engine.semantic.encoders
import engine.semantic.fusion
import engine.semantic.reduction
import engine.semantic.table_file
from engine.config import load_config
from engine.evaluation.evaluator import RankingEvaluator
from engine.pipeline import run_experiment
from engine.store import open_store
from engine.trained import load_trained_run
from test_methods_pinned import SMALL, write_table

CASES = {
    "kirec-gate-pca": {"knowledge.fusion": "gate", "knowledge.reduction": "pca"},
    "kirec-add-adapter-mlp": {"knowledge.fusion": "add", "knowledge.reduction": "adapter-mlp"},
    "kirec-concat-random-tuned": {
        "knowledge.fusion": "concat",
        "knowledge.reduction": "random",
        "knowledge.freeze_semantic": False,
    },
    "init-pca": {"knowledge.method": "init"},
    "semantic-only-adapter-linear": {"knowledge.method": "semantic-only", "knowledge.reduction": "adapter-linear"},
    "id": {"knowledge.method": "id"},
    # side values' embeddings wrap the method's items (their tensors under items.base.*)
    "kirec-gated-add-side-raw": {"knowledge.fusion": "gated-add", "knowledge.side_fields": "raw"},
    "id-side-raw": {"knowledge.method": "id", "knowledge.side_fields": "raw"},
}

# What the old reload ran again, and nothing may run now: the LLM backend, the encoder, the table file, the
# semantic-table pipeline around them, and every reduction and rescaling.
FORBIDDEN = [
    (engine.extraction, "create_backend"),
    (engine.extraction.backends, "create_backend"),
    (engine.semantic.encoders, "make_encoder"),
    (engine.semantic.table_file, "load_semantic_table"),
    (engine.knowledge, "semantic_table"),
    (engine.knowledge, "extract_attributes"),
    (engine.semantic.reduction, "fit_pca"),
    (engine.semantic.reduction, "fit_random_projection"),
    (engine.semantic.reduction, "reduce_table"),
    (engine.semantic.fusion, "reduce_table"),
    (engine.semantic.fusion, "_rescale_rows"),
    (engine.semantic.fusion, "_centre"),
]


def forbid_knowledge_pipeline(monkeypatch):
    for module, name in FORBIDDEN:

        def refuse(*_args, _what=f"{module.__name__}.{name}", **_kwargs):
            raise AssertionError(f"reload called {_what}")

        monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_reloads_from_its_checkpoint_alone_and_scores_as_trained(
    case, tiny_dataset, tmp_path, monkeypatch, one_torch_thread
):
    trained = []
    build = engine.methods.build_run_model
    monkeypatch.setattr(
        engine.methods, "build_run_model", lambda *a, **k: trained.append(build(*a, **k)) or trained[-1]
    )
    cfg = load_config(
        flags={
            **SMALL,
            **CASES[case],
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.semantic_table": str(write_table(tmp_path / "table.npy", 30)),
        }
    )
    result = run_experiment(cfg, cwd=tmp_path)
    assert result.status == "FINISHED" and len(trained) == 1
    model = trained[0].eval()  # holds the best epoch's weights once training returns
    (tmp_path / "table.npy").unlink()  # not needed to reload, and not there to be read

    forbid_knowledge_pipeline(monkeypatch)
    with open_store(tmp_path / "runs.db") as store:
        run = load_trained_run(store, result.run_id, cwd=tmp_path)
    assert type(run.model) is type(model) and type(run.model.items) is type(model.items)
    histories = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5, 6, 7], [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]])
    with torch.no_grad():
        assert torch.equal(run.model.score_all(histories), model.score_all(histories))
        assert torch.equal(run.model.item_table(), model.item_table())
    test = RankingEvaluator(run.dataset, "test", cfg.eval, cfg.model.max_len).evaluate(run.model, "cpu")
    assert test == result.test
    for kind in ("named_buffers", "named_parameters"):  # a fine-tuned table stays a parameter, a frozen one a buffer
        assert [n for n, _ in getattr(run.model.items, kind)()] == [n for n, _ in getattr(model.items, kind)()]


def test_a_checkpoint_without_the_semantic_table_is_refused_with_one_line(tiny_dataset, tmp_path):
    from types import SimpleNamespace

    from engine.knowledge import build_items
    from engine.training.checkpoint import CheckpointError

    cfg = load_config(flags={**SMALL, "data.dataset": str(tiny_dataset)})
    with pytest.raises(CheckpointError, match=r"^checkpoint: method 'kirec' needs items\.semantic\.weight"):
        build_items(cfg, SimpleNamespace(num_items=30), tmp_path, stored={"ids.weight": torch.zeros(31, 16)})
