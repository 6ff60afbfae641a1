"""Training with DDP: the context from torchrun's variables, each rank's shard of the global batches, the weighted
shard losses adding up to the one-process gradient, and `kirec run --nproc 2` (gloo, 2 CPU processes) against
a one-process run of the same global batch."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import ConfigError, ModelConfig
from engine.data.dataset import PAD
from engine.models import build_model
from engine.training import SequenceBatcher, seed_everything
from engine.training.distributed import DistributedContext, TrainingStep
from tests.unit.test_losses import cycle_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_without_torchrun_the_context_is_one_process_and_changes_nothing():
    ctx = DistributedContext.from_env({"PATH": "/bin"})
    assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)
    assert DistributedContext.from_env({"WORLD_SIZE": "1", "RANK": "0"}).enabled is False
    module = torch.nn.Linear(2, 2)
    assert ctx.wrap(module) is module
    assert ctx.join(torch.device("cpu")) == torch.device("cpu") and not torch.distributed.is_initialized()
    value = torch.tensor(3.0)
    assert ctx.average(value) is value and ctx.on_main(lambda: 7) == 7 and ctx.from_main("x") == "x"
    stop = lambda: True  # noqa: E731
    assert ctx.agreed(stop) is stop


def test_torchrun_variables_are_read_and_bad_ones_named():
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}
    ctx = DistributedContext.from_env(env)
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.master_addr, ctx.master_port) == (1, 2, 1, "10.0.0.1", 1234)
    assert ctx.enabled and not ctx.is_main and ctx.shard == (1, 2)
    with pytest.raises(ConfigError, match="RANK"):
        DistributedContext.from_env({**env, "RANK": "2"})
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        DistributedContext.from_env({**env, "WORLD_SIZE": "two"})
    with pytest.raises(ConfigError, match="MASTER_PORT"):
        DistributedContext.from_env({k: v for k, v in env.items() if k != "MASTER_PORT"})


def _right_aligned(rows: np.ndarray, width: int) -> np.ndarray:
    """Left-pad (or trim padding from) a batch to `width` columns."""
    if rows.shape[1] >= width:
        assert (rows[:, : rows.shape[1] - width] == PAD).all()
        return rows[:, rows.shape[1] - width :]
    return np.pad(rows, ((0, 0), (width - rows.shape[1], 0)))


@pytest.mark.parametrize("objective", ["causal", "masked"])
@pytest.mark.parametrize("world", [2, 3])
def test_each_rank_gets_its_rows_of_the_one_process_batches(objective, world):
    """The shards of every batch are exactly the one-process batch (same order, same [MASK]s), and the weights
    are world x each shard's share of the targets. 48 users in batches of 46 leave a last batch of 2 rows:
    with 3 ranks the third trains on a zero-weight row."""
    dataset = cycle_dataset()
    whole = list(SequenceBatcher(dataset, objective, 8, 46, seed=5).epoch())
    shards = [list(SequenceBatcher(dataset, objective, 8, 46, seed=5, shard=(r, world)).epoch()) for r in range(world)]
    assert all(len(s) == len(whole) == 2 for s in shards)
    for index, batch in enumerate(whole):
        inputs, targets = batch.inputs.numpy(), batch.targets.numpy()
        total = int((targets != PAD).sum())
        mine = [s[index] for s in shards]
        for rank, part in enumerate(mine):
            expected_inputs, expected_targets = inputs[rank::world], targets[rank::world]
            if len(expected_inputs) == 0:
                assert part.weight == 0.0 and part.inputs.shape[0] == 1
                continue
            width = inputs.shape[1]
            assert np.array_equal(_right_aligned(part.inputs.numpy(), width), expected_inputs)
            assert np.array_equal(_right_aligned(part.targets.numpy(), width), expected_targets)
            assert part.weight == pytest.approx(world * int((expected_targets != PAD).sum()) / total)
        assert sum(p.weight for p in mine) == pytest.approx(world)
    assert any(p.weight == 0.0 for p in [s[-1] for s in shards]) == (world == 3)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec"])
def test_the_mean_of_the_weighted_shard_gradients_is_the_one_process_gradient(backbone):
    """What DDP computes (the mean over ranks of each rank's gradient) equals one process's batch gradient."""
    torch.set_num_threads(1)
    dataset = cycle_dataset()
    cfg = ModelConfig(backbone=backbone, hidden_size=16, num_layers=1, max_len=8, dropout=0.0)
    seed_everything(0)
    model = build_model(cfg, dataset.num_items)
    objective = model.objective
    step = TrainingStep(model, "ce", 1, None)

    def gradient(batch) -> torch.Tensor:
        model.zero_grad(set_to_none=False)
        step(batch.inputs, batch.targets, batch.weight).backward()
        return torch.cat([p.grad.flatten().clone() for p in model.parameters()])

    whole = next(iter(SequenceBatcher(dataset, objective, 8, 32, seed=3).epoch()))
    shards = [next(iter(SequenceBatcher(dataset, objective, 8, 32, seed=3, shard=(r, 2)).epoch())) for r in range(2)]
    assert shards[0].weight != shards[1].weight  # rows of different lengths: an unweighted mean would be off
    expected = gradient(whole)
    averaged = (gradient(shards[0]) + gradient(shards[1])) / 2
    torch.testing.assert_close(averaged, expected, rtol=1e-4, atol=1e-7)


def _trainable_without_gradient(model, loss: str, batch) -> list[str]:
    TrainingStep(model, loss, 2, torch.Generator().manual_seed(0))(batch.inputs, batch.targets).backward()
    return [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_every_trainable_parameter_gets_a_gradient_in_every_step(backbone):
    """DDP runs with find_unused_parameters=False, which is right only if each step reaches every trainable
    parameter (else DDP raises on the next step): every backbone with every fusion, the fine-tuned and adapted
    semantic tables, init and id, under full CE and the sampled losses (which score only some table rows)."""
    from engine.choices import FUSION_CHOICES
    from engine.semantic.fusion import build_item_representation
    from tests.unit.test_semantic_fusion import D, NUM_ITEMS, kcfg, semantic_table

    torch.set_num_threads(1)
    modes = [dict(method="kirec", fusion=f, reduction="pca", freeze_semantic=False) for f in FUSION_CHOICES] + [
        dict(method="kirec", fusion="gate", reduction="adapter-mlp"),
        dict(method="semantic-only", reduction="pca", freeze_semantic=False),
        dict(method="semantic-only", reduction="adapter-linear"),
        dict(method="init", reduction="pca"),
        dict(method="id"),
    ]
    cfg = ModelConfig(backbone=backbone, hidden_size=D, num_layers=1, num_heads=2, max_len=6, dropout=0.0)
    objective = "masked" if backbone == "bert4rec" else "causal"
    batch = next(iter(SequenceBatcher(cycle_dataset(num_items=NUM_ITEMS), objective, 6, 16, seed=1).epoch()))
    for mode in modes:
        for loss in ("ce", "bce", "sampled-softmax"):
            items, _ = build_item_representation(kcfg(**mode), NUM_ITEMS, D, semantic_table(), seed=3)
            seed_everything(0)
            model = build_model(cfg, NUM_ITEMS, items)
            assert _trainable_without_gradient(model, loss, batch) == [], (mode, loss)


def _kirec_run(folder: Path, dataset: Path, *extra: str) -> subprocess.CompletedProcess:
    folder.mkdir()
    command = [
        sys.executable,
        "-m",
        "kirec_tui.cli",
        "run",
        "--dataset",
        str(dataset),
        "--method",
        "id",
        "--hidden-size",
        "16",
        "--max-len",
        "10",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--epochs",
        "4",
        "--patience",
        "10",
        "--db",
        str(folder / "runs.db"),
        "--set",
        "model.dropout=0",
        "--set",
        "train.num_threads=1",
        "--set",
        "train.amp_cpu=false",  # two ranks' fp32 gradients average to one process's; bf16 rounding would not
        "--json",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


REFERENCE_EPOCHS = 6


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One uninterrupted `kirec run --nproc 2` on the tiny data, shared by the tests below that compare with it
    (torchrun's start-up is most of such a test's time): (the dataset, the run's runs.db, the finished command)."""
    from tests.data_support import write_generic_dataset

    root = tmp_path_factory.mktemp("ddp")
    dataset = write_generic_dataset(root / "tiny")
    finished = _kirec_run(root / "two", dataset, "--epochs", str(REFERENCE_EPOCHS), "--nproc", "2")
    return dataset, root / "two" / "runs.db", finished


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(ddp_reference, tmp_path):
    """Same global batch (32): per-epoch losses, validation, test metrics and the best weights agree to float
    rounding (dropout off; the ranks' sums of gradients are added in another order than one process's)."""
    from engine.store import open_store

    tiny_dataset, two_db, double = ddp_reference
    single = _kirec_run(tmp_path / "one", tiny_dataset, "--epochs", str(REFERENCE_EPOCHS))
    assert single.returncode == 0, single.stderr[-3000:]
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = json.loads(single.stdout), json.loads(double.stdout)  # exactly one JSON object: rank 1 printed none
    assert two["status"] == "FINISHED" and two["best_epoch"] == one["best_epoch"]
    assert double.stderr.count("epoch   1 ") == 1  # rank 1 printed no progress
    for split in ("valid", "test"):
        for key in ("NDCG@10", "HR@10", "MRR@10"):
            assert two[split][key] == pytest.approx(one[split][key], abs=1e-6), (split, key)

    with open_store(two_db) as store:
        runs = store.list_runs()
        assert [(r.id, r.status.value) for r in runs] == [(two["run_id"], "FINISHED")]
        losses_two = [p.value for p in store.metric_history(two["run_id"], "train/loss")]
        valid_two = store.metric_history(two["run_id"], "valid/NDCG@10")
        assert [p.step for p in valid_two] == list(range(1, REFERENCE_EPOCHS + 1))  # each epoch once, by rank 0
    with open_store(tmp_path / "one" / "runs.db") as store:
        losses_one = [p.value for p in store.metric_history(one["run_id"], "train/loss")]
        valid_one = [p.value for p in store.metric_history(one["run_id"], "valid/NDCG@10")]
    assert losses_two == pytest.approx(losses_one, rel=1e-5)
    assert [p.value for p in valid_two] == pytest.approx(valid_one, abs=1e-6)

    best_one = torch.load(one["checkpoint"], weights_only=True)
    best_two = torch.load(two["checkpoint"], weights_only=True)
    assert best_one.keys() == best_two.keys()
    for key in best_one:
        torch.testing.assert_close(best_two[key], best_one[key], rtol=1e-4, atol=1e-5, msg=key)

    # Rank 0 alone wrote the run's files and recorded them, with their hashes, as one process does: the best
    # checkpoint and the test ranks remain, the training state went when the run finished, nothing partial.
    from engine.training.checkpoint import sha256_of

    with open_store(two_db) as store:
        artifacts = {a.kind: a for a in store.get_run(two["run_id"]).artifacts}
    assert sorted(artifacts) == ["checkpoint", "test_ranks"]
    assert artifacts["checkpoint"].path == two["checkpoint"]
    for artifact in artifacts.values():
        assert sha256_of(Path(artifact.path)) == artifact.sha256
    folder = Path(two["checkpoint"]).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(a.path).name for a in artifacts.values())


def _logged_epochs(db: Path) -> int:
    # closing(): `with` alone leaves the connection open until the cyclic GC (its statement cache refers back to
    # it); one left open here while a kirec process removes and recreates -shm makes this process's next
    # connection to the file read a stale WAL index ("database disk image is malformed").
    with contextlib.closing(sqlite3.connect(db)) as con:
        if not con.execute("select 1 from sqlite_master where name='metrics'").fetchall():
            return 0
        return con.execute("select count(*) from metrics where key='valid/NDCG@10'").fetchone()[0]


def test_nproc_refuses_what_would_fail_on_every_rank_before_starting_any(tiny_dataset, tmp_path):
    from typer.testing import CliRunner

    from kirec_tui.cli import app

    db = tmp_path / "runs.db"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            str(tiny_dataset),
            "--method",
            "id",
            "--device",
            "cpu",
            "--batch-size",
            "2",
            "--db",
            str(db),
            "--nproc",
            "3",
        ],
    )
    assert result.exit_code == 2 and "train.batch_size" in result.output
    assert not db.exists()  # nothing started, nothing stored


@pytest.mark.slow
def test_sigterm_stops_every_rank_and_the_run_resumes_under_ddp_to_the_uninterrupted_result(ddp_reference, tmp_path):
    """SIGTERM (which `kirec run` takes as a Ctrl-C) to `kirec run --nproc 2` a few epochs in reaches torchrun once,
    every rank stops after its step, rank 0 marks the run INTERRUPTED, the command exits 130 and no rank outlives
    it. Then `kirec run --resume ID --nproc 2`: every rank loads the one training state rank 0 saved, and the run
    ends as an uninterrupted `--nproc 2` run (dropout off, full CE: the only generators the ranks do not share draw
    nothing). One interrupted launch serves both checks (torchrun's start-up is most of such a test); that a Ctrl-C
    takes SIGTERM's path is the test below this one."""
    import psutil

    from engine.store import open_store

    tiny_dataset, whole_db, whole = ddp_reference
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference = json.loads(whole.stdout)

    folder = tmp_path / "cut"
    folder.mkdir()
    db = folder / "runs.db"
    base = [sys.executable, "-m", "kirec_tui.cli", "run", "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        base
        + [
            "--dataset",
            str(tiny_dataset),
            "--method",
            "id",
            "--hidden-size",
            "16",
            "--max-len",
            "10",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--epochs",
            str(REFERENCE_EPOCHS),
            "--patience",
            "10",
            "--set",
            "model.dropout=0",
            "--set",
            "train.num_threads=1",
            "--set",
            "train.amp_cpu=false",  # as the reference ran
            "--nproc",
            "2",
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while not (db.exists() and _logged_epochs(db) >= 2):  # epochs are logged: training really runs on both ranks
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            if db.exists() and len(descendants) < 3:  # rank 0 made the database: torchrun and both ranks are up
                descendants = psutil.Process(proc.pid).children(recursive=True)
            time.sleep(0.05)
        assert len(descendants) >= 3  # torchrun and its two ranks
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130, proc.stderr.read()[-3000:]
        gone, alive = psutil.wait_procs(descendants, timeout=60)
        assert alive == []
    finally:
        for p in [proc, *descendants]:
            with contextlib.suppress(Exception):
                p.kill()
    assert "Traceback" not in proc.stderr.read()
    with open_store(db) as store:
        (cut,) = store.list_runs()
    assert cut.status.value == "INTERRUPTED" and 2 <= _logged_epochs(db) < REFERENCE_EPOCHS

    resumed = subprocess.run(
        base + ["--resume", str(cut.id), "--nproc", "2", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["run_id"] == cut.id and result["status"] == "FINISHED"
    assert result["best_epoch"] == reference["best_epoch"]
    for split in ("valid", "test"):
        for key in ("NDCG@10", "HR@10", "MRR@10"):
            assert result[split][key] == pytest.approx(reference[split][key], abs=1e-6), (split, key)
    with open_store(db) as store:
        losses = store.metric_history(cut.id, "train/loss")
        assert [p.step for p in losses] == list(range(1, REFERENCE_EPOCHS + 1))  # each once, none replayed twice
        assert sorted(a.kind for a in store.get_run(cut.id).artifacts) == ["checkpoint", "test_ranks"]
    with open_store(whole_db) as store:
        expected = [p.value for p in store.metric_history(reference["run_id"], "train/loss")]
    assert [p.value for p in losses] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_reach_torchrun_once_as_sigint_and_a_second_one_reaches_the_ranks(monkeypatch, signum):
    """`kirec run --nproc N`'s own process, with a stand-in for torchrun (the real chain, torchrun to the ranks, is
    the test above, by SIGTERM): the first Ctrl-C or SIGTERM goes on to torchrun as one SIGINT and the command
    exits 130; a second goes to the ranks themselves; afterwards the signal handlers are the ones before."""
    import psutil

    from kirec_tui.cli import run as run_module

    to_launcher: list[int] = []
    to_ranks: list[int] = []

    class Rank:
        def send_signal(self, sig):
            to_ranks.append(sig)

    class Launcher:  # torchrun, which here gets the signal twice while it runs, then exits as torchrun does
        pid = os.getpid()

        def __init__(self, command, **_kwargs):
            assert "--nproc-per-node=2" in command

        def send_signal(self, sig):
            to_launcher.append(sig)

        def wait(self):
            os.kill(os.getpid(), signum)
            deadline = time.monotonic() + 10
            while not (to_launcher or unhandled) and time.monotonic() < deadline:
                time.sleep(0.001)  # until the first one is handled: two pending signals would count as one
            os.kill(os.getpid(), signum)
            return 1

    unhandled: list[int] = []
    fallback = lambda sig, _frame: unhandled.append(sig)  # noqa: E731 - a signal the command failed to take
    before = {sig: signal.signal(sig, fallback) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        monkeypatch.setattr(subprocess, "Popen", Launcher)
        monkeypatch.setattr(psutil.Process, "children", lambda self, recursive=False: [Rank(), Rank()])
        code = run_module.launch_ranks(2, None, {"train.epochs": "3"}, as_json=False)
        assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == [fallback, fallback]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    assert (code, to_launcher, to_ranks, unhandled) == (130, [signal.SIGINT], [signal.SIGINT] * 2, [])


def test_resume_with_several_processes_checks_the_run_before_starting_any(tmp_path):
    """`--resume ID --nproc N` reads the stored run in this process first: a missing database or run, or a flag
    beside --resume, is one line and its exit code, and no process starts (nothing is created)."""
    from typer.testing import CliRunner

    from engine.store import open_store
    from kirec_tui.cli import app

    db = tmp_path / "runs.db"
    missing = CliRunner().invoke(app, ["run", "--resume", "1", "--db", str(db), "--nproc", "2"])
    assert missing.exit_code == 4 and len(missing.output.strip().splitlines()) == 1 and not db.exists()
    open_store(db).close()
    before = db.read_bytes()
    unknown = CliRunner().invoke(app, ["run", "--resume", "7", "--db", str(db), "--nproc", "2"])
    assert unknown.exit_code == 4 and "7" in unknown.output and len(unknown.output.strip().splitlines()) == 1
    flagged = CliRunner().invoke(app, ["run", "--resume", "7", "--epochs", "3", "--db", str(db), "--nproc", "2"])
    assert flagged.exit_code == 2 and "train.epochs" in flagged.output
    assert db.read_bytes() == before
