"""`kirec run --resume`: an INTERRUPTED run continues from its last finished epoch, in the same run row, and ends
with the metrics of an uninterrupted run of the same config (CPU): after a cancel, and after a real kill -9 (whose
dead writer's run every reading command shows INTERRUPTED first)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.cli_support import invoke

from engine.config import load_config
from engine.events import EpochEnd
from engine.pipeline import resume_experiment, run_experiment
from engine.store import open_store

ROOT = Path(__file__).resolve().parents[2]
FLAGS = {
    "knowledge.method": "id",
    "model.hidden_size": "16",
    "model.max_len": "10",
    "train.batch_size": "16",
    "train.device": "cpu",
    "train.num_threads": "1",
    "train.patience": "100",
    "model.dropout": "0.3",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(tiny_dataset: Path, db: Path, epochs: int, backbone: str = "sasrec", loss: str = "ce"):
    return load_config(
        env={},
        flags={
            **FLAGS,
            "data.dataset": str(tiny_dataset),
            "db": str(db),
            "train.epochs": str(epochs),
            "model.backbone": backbone,
            "train.loss": loss,
        },
    )


def epoch_curve(db: Path, run_id: int) -> list[tuple[int, float]]:
    with open_store(db) as store:
        return [(p.step, p.value) for p in store.metric_history(run_id, "valid/NDCG@10")]


# bce: the negatives' generator must continue; bert4rec: the batcher's masks too; dropout: torch's generator.
@pytest.mark.parametrize("backbone, loss", [("sasrec", "bce"), ("bert4rec", "ce")])
def test_a_cancelled_run_resumes_to_the_uninterrupted_result(tiny_dataset, tmp_path, backbone, loss):
    db = tmp_path / "runs.db"
    whole = run_experiment(config(tiny_dataset, db, 4, backbone, loss), cwd=tmp_path)
    epochs_seen = []

    def count(event):
        if isinstance(event, EpochEnd):
            epochs_seen.append(event.epoch)

    cut = run_experiment(
        config(tiny_dataset, db, 4, backbone, loss),
        on_event=count,
        should_stop=lambda: len(epochs_seen) >= 2,
        cwd=tmp_path,
    )
    assert cut.status == "INTERRUPTED" and epochs_seen == [1, 2]
    with open_store(db) as store:
        assert store.get_run(cut.run_id).summary.status == "INTERRUPTED"

    epochs_seen.clear()
    resumed = resume_experiment(db, cut.run_id, on_event=count, cwd=tmp_path)
    assert epochs_seen == [3, 4]  # continued, not trained again from the start
    assert (resumed.run_id, resumed.status, resumed.best_epoch) == (cut.run_id, "FINISHED", whole.best_epoch)
    for key, value in whole.test.items():
        assert resumed.test[key] == pytest.approx(value, abs=1e-6), key
    assert epoch_curve(db, cut.run_id) == pytest.approx(epoch_curve(db, whole.run_id), abs=1e-6)
    with open_store(db) as store:
        detail = store.get_run(cut.run_id)
    assert detail.summary.status == "FINISHED" and detail.test_metrics == pytest.approx(
        {f"test/{k}": v for k, v in whole.test.items()}, abs=1e-6
    )
    artifacts = {a.kind: Path(a.path) for a in detail.artifacts}
    assert sorted(artifacts) == ["checkpoint", "test_ranks"]  # the resumable state goes once the run finished
    assert sorted(p.name for p in artifacts["checkpoint"].parent.glob(f"run-{cut.run_id}-*")) == sorted(
        p.name for p in artifacts.values()
    )


# The killed process trains through this wrapper: each batch waits a little, so that the kill lands mid-run on a
# dataset that trains in a second. The wait changes no number; the test synchronises on the store, not on time.
SLOW_KIREC = """
import sys, time
from engine.training.batches import SequenceBatcher
epoch = SequenceBatcher.epoch
def slowly(self):
    for batch in epoch(self):
        time.sleep(0.3)
        yield batch
SequenceBatcher.epoch = slowly
from kirec_tui.cli import main
sys.argv = ["kirec", *sys.argv[1:]]
main()
"""
CLI_FLAGS = [
    "--method",
    "id",
    "--hidden-size",
    "16",
    "--max-len",
    "10",
    "--batch-size",
    "16",
    "--device",
    "cpu",
    "--patience",
    "100",
    "--set",
    "train.num_threads=1",
    "--set",
    "model.dropout=0.3",
    "--loss",
    "bce",
]


def finished_state_epochs(db: Path) -> int:
    """How many epochs the newest run's saved training state holds (0 before the first one is saved)."""
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        try:
            rows = con.execute("SELECT path FROM artifacts WHERE kind = 'training_state'").fetchall()
        except sqlite3.OperationalError:  # the tables are not there yet
            return 0
    return max((int(path.rsplit("-e", 1)[1].removesuffix(".pt")) for (path,) in rows), default=0)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tiny_dataset, tmp_path):
    db = tmp_path / "runs.db"
    args = ["run", "--dataset", str(tiny_dataset), "--epochs", "6", "--db", str(db), *CLI_FLAGS]
    script = tmp_path / "slow_kirec.py"
    script.write_text(SLOW_KIREC)
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 180
        while finished_state_epochs(db) < 1:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.1)  # polling interval of the store, not a synchronisation
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        killed_at = time.time()
    finally:
        proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = finished_state_epochs(db)
    assert 1 <= saved < 6

    # Every reading command sees the dead writer's run as INTERRUPTED, though the row still says RUNNING.
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("RUNNING",)]  # nobody has looked yet
    shown = invoke("runs", "show", "1", "--db", str(db), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["summary"]["status"] == "INTERRUPTED"
    assert "ended without finishing" in json.loads(shown.stdout)["error"]
    exported = invoke("runs", "export", "--format", "json", "--db", str(db), cwd=tmp_path)
    assert [r["status"] for r in json.loads(exported.stdout)] == ["INTERRUPTED"]

    resumed = invoke("run", "--resume", "1", "--db", str(db), "--json", cwd=tmp_path)
    assert resumed.exit_code == 0, resumed.output
    after = json.loads(resumed.stdout.strip().splitlines()[-1])
    whole = invoke(*args, "--json", cwd=tmp_path)
    assert whole.exit_code == 0, whole.output
    uninterrupted = json.loads(whole.stdout.strip().splitlines()[-1])
    assert (after["run_id"], after["status"], after["best_epoch"]) == (1, "FINISHED", uninterrupted["best_epoch"])
    for key, value in uninterrupted["test"].items():
        assert after["test"][key] == pytest.approx(value, abs=1e-6), key
    assert epoch_curve(db, 1) == pytest.approx(epoch_curve(db, uninterrupted["run_id"]), abs=1e-6)
    with open_store(db) as store:
        stamps = [(p.step, p.timestamp.timestamp()) for p in store.metric_history(1, "valid/NDCG@10")]
    assert [step for step, _ in stamps] == [1, 2, 3, 4, 5, 6]
    assert all((at < killed_at) == (step <= saved) for step, at in stamps)  # the saved epochs were not trained again
