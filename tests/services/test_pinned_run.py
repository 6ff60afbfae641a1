"""A fixed-seed `kirec run` on the embedded default dataset gives the metrics it gave before the engine's
structure changed (services, registries): refactors keep behaviour, and this is where that is checked.

The pinned figures were recorded with the code of d8bcd0c (before the services and registries) on this
project's 2-core CPU machine, one torch thread. The final training loss is continuous in every parameter, so
it catches any change in initialisation, fusion, reduction or the forward pass (rel 1e-4 leaves room only for
float summation order); the ranking metrics (after 3 short epochs, small) allow a user's rank to flip on another CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_support import invoke

SMALL = (
    "--set",
    "model.hidden_size=16",
    "--set",
    "model.max_len=20",
    "--set",
    "train.batch_size=256",
    "--set",
    "train.num_threads=1",
    "--set",
    "train.seed=7",
    "--set",
    "train.patience=5",
    "--set",
    "train.lr=0.005",
    "--set",
    "train.epochs=3",
    # The defaults when the figures were recorded: pinned, so that choosing new defaults moves no figure.
    "--set",
    "train.lr_schedule=constant",
    "--set",
    "train.warmup_epochs=0",
    "--set",
    "train.amp_cpu=false",
)

ML_LATEST_SMALL_ITEMS = 3650  # after the 5-core filter

# method-specific flags -> (final train loss, test NDCG@10, test HR@10), recorded at d8bcd0c
PINNED = {
    "id": (("--set", "knowledge.method=id"), (7.945284525553386, 0.00769510699303318, 0.018032786885245903)),
    "kirec-gate-pca": (
        ("--set", "knowledge.method=kirec", "--set", "knowledge.fusion=gate", "--set", "knowledge.reduction=pca"),
        (8.212088267008463, 0.004769902893881352, 0.011475409836065573),
    ),
    "semantic-only-adapter": (
        ("--set", "knowledge.method=semantic-only", "--set", "knowledge.reduction=adapter-mlp"),
        (8.200198491414389, 0.0010578229728293606, 0.003278688524590164),
    ),
}


def semantic_table(path, num_items: int, dim: int = 24) -> str:
    """A fixed, seeded item table (row 0 padding), so the knowledge path runs without the LLM or the encoder."""
    table = np.random.default_rng(0).normal(size=(num_items + 1, dim)).astype(np.float32)
    table[0] = 0.0
    np.save(path, table)
    return str(path)


@pytest.mark.parametrize("variant", sorted(PINNED))
def test_a_fixed_seed_run_on_the_default_dataset_keeps_its_metrics(variant, shared_data, tmp_path, one_torch_thread):
    flags, pinned = PINNED[variant]
    table = semantic_table(tmp_path / "table.npy", ML_LATEST_SMALL_ITEMS)
    result = invoke(
        "run",
        "--json",
        "--db",
        str(tmp_path / "runs.db"),
        "--data-root",
        str(shared_data),
        "--set",
        f"knowledge.semantic_table={table}",
        "--no-baseline",
        *SMALL,
        *flags,
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    from engine.store import open_store

    with open_store(tmp_path / "runs.db", create=False) as store:
        loss = store.metric_history(out["run_id"], "train/loss")[-1].value
    figures = (loss, out["test"]["NDCG@10"], out["test"]["HR@10"])
    assert loss == pytest.approx(pinned[0], rel=1e-4)
    assert figures[1:] == pytest.approx(pinned[1:], abs=1e-3)
