"""Checkpoints bound to their run: beside their own database, verified by hash on load, inside the workspace,
and what `recommend` says about a run that has no checkpoint, a changed one, or one that has not finished."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from tests.cli_support import invoke

from engine.store import open_store
from engine.trained import RunNotReadyError, load_trained_run
from tests.conftest import write_generic_dataset

SMALL = [
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
    "--set",
    "train.num_threads=1",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(cwd: Path, dataset: Path, db: str, *extra: str) -> dict:
    result = invoke("run", "--dataset", str(dataset), "--epochs", "2", "--db", db, "--json", *SMALL, *extra, cwd=cwd)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_databases(tmp_path_factory):
    """Run 1 of a.db and run 1 of b.db, trained with different seeds in one working folder."""
    folder = tmp_path_factory.mktemp("work")
    dataset = write_generic_dataset(folder / "tiny")
    first = run(folder, dataset, "a.db", "--seed", "1")
    second = run(folder, dataset, "b.db", "--seed", "2")
    return folder, dataset, first, second


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_runs_of_two_databases_keep_their_own_checkpoints(two_databases):
    folder, _, first, second = two_databases
    assert first["run_id"] == second["run_id"] == 1
    a, b = Path(first["checkpoint"]), Path(second["checkpoint"])
    assert a.parent == folder / "a.checkpoints" and b.parent == folder / "b.checkpoints"
    assert a.name.startswith("run-1-") and a.name != b.name and a.exists() and b.exists()
    with open_store(folder / "a.db") as store_a, open_store(folder / "b.db") as store_b:
        served_a, served_b = load_trained_run(store_a, 1, cwd=folder), load_trained_run(store_b, 1, cwd=folder)
        assert store_a.get_run(1).artifacts[0].sha256 is not None
    assert served_a.checkpoint == a and served_b.checkpoint == b and served_a.note is None
    weights_a, weights_b = served_a.model.state_dict(), served_b.model.state_dict()
    assert all(torch.equal(v, torch.load(a, weights_only=True)[k]) for k, v in weights_a.items())
    assert any(not torch.equal(v, weights_b[k]) for k, v in weights_a.items())


def test_a_replaced_checkpoint_is_refused_in_one_line(two_databases, tmp_path):
    folder, _, first, second = two_databases
    work = tmp_path / "copy"
    shutil.copytree(folder, work)
    replaced = work / "a.checkpoints" / Path(first["checkpoint"]).name
    with sqlite3.connect(work / "a.db") as con:  # the copy's rows point at the copy's files
        con.execute("UPDATE artifacts SET path = replace(path, ?, ?)", (str(folder), str(work)))
    shutil.copy(work / "b.checkpoints" / Path(second["checkpoint"]).name, replaced)  # b's model under a's name
    result = invoke("recommend", "--run", "1", "--user", "u3", "--db", "a.db", cwd=work)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert str(replaced) in line and "sha256" in line and "refusing" in line

    replaced.unlink()
    missing = invoke("recommend", "--run", "1", "--user", "u3", "--db", "a.db", cwd=work)
    assert missing.exit_code == 4 and "missing" in one_line_error(missing)


def copy_of(folder: Path, work: Path) -> Path:
    """A copy of the two databases' folder whose a.db points at the copied checkpoints."""
    shutil.copytree(folder, work)
    with contextlib.closing(sqlite3.connect(work / "a.db")) as con, con:
        con.execute("UPDATE artifacts SET path = replace(path, ?, ?)", (str(folder), str(work)))
    return work


def test_a_changed_dataset_is_refused(two_databases, tmp_path):
    folder, dataset, _, _ = two_databases
    work = copy_of(folder, tmp_path / "copy")
    with sqlite3.connect(work / "a.db") as con:
        con.execute("UPDATE runs SET config_json = replace(config_json, ?, ?)", (str(folder), str(work)))
    with (work / "tiny" / "interactions.csv").open("a") as fh:
        fh.writelines(f"u1,i{i},{5000 + i}\n" for i in range(6))
    with (
        open_store(work / "a.db") as store,
        pytest.raises(RunNotReadyError, match="fingerprint .* the data or its options changed"),
    ):
        load_trained_run(store, 1, cwd=work)


def make_interrupted_run(db: Path, checkpoint: Path | None = None, best_epoch: int = 3) -> int:
    with open_store(db) as store:
        run_id = store.create_run("cut", {}, "d", "fp", "sasrec", "id", "cpu", params={})
        if checkpoint is not None:
            store.set_artifact(run_id, "checkpoint", checkpoint, None, tags={"best_epoch": str(best_epoch)})
        store.finish_run(run_id, "INTERRUPTED", "interrupted (Ctrl-C)")
    return run_id


def test_an_interrupted_run_without_checkpoint_says_how_to_continue(tmp_path):
    db = tmp_path / "runs.db"
    run_id = make_interrupted_run(db)
    result = invoke("recommend", "--run", str(run_id), "--user", "u3", "--db", str(db), cwd=tmp_path)
    assert result.exit_code == 4
    line = one_line_error(result)
    assert "INTERRUPTED" in line and "no checkpoint" in line and f"kirec run --resume {run_id}" in line


def test_an_interrupted_run_is_served_from_its_best_checkpoint_with_a_note(two_databases, tmp_path):
    folder, _, first, _ = two_databases
    work = copy_of(folder, tmp_path / "copy")
    with sqlite3.connect(work / "a.db") as con:
        con.execute("UPDATE runs SET status = 'INTERRUPTED'")
        con.execute("UPDATE tags SET value = '1' WHERE key = 'best_epoch'")
    result = invoke("recommend", "--run", "1", "--user", "u3", "-k", "3", "--db", "a.db", cwd=work)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Item number") == 3
    assert "run 1 is INTERRUPTED; serving its best checkpoint so far (epoch 1)" in " ".join(result.output.split())
    assert "kirec run --resume 1" in result.output


def count_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_a_relative_checkpoint_dir_may_not_leave_the_workspace(tmp_path):
    dataset = write_generic_dataset(tmp_path / "tiny")
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    result = invoke(
        "run",
        "--dataset",
        str(dataset),
        "--epochs",
        "1",
        "--db",
        "r.db",
        *SMALL,
        "--set",
        "train.checkpoint_dir=../../",
        cwd=work,
    )
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "train.checkpoint_dir" in line and "outside the workspace" in line
    assert count_runs(work / "r.db") == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["a", "tiny"]

    elsewhere = tmp_path / "elsewhere"  # absolute paths are allowed on purpose
    payload = run(work, dataset, "r.db", "--set", f"train.checkpoint_dir={elsewhere}")
    assert Path(payload["checkpoint"]).parent == elsewhere
    inside = run(work, dataset, "r.db", "--set", "train.checkpoint_dir=ckpt/../mine")
    assert Path(inside["checkpoint"]).parent == work / "mine"


def test_a_checkpoint_dir_that_is_a_file_is_refused_before_any_run_row(tmp_path):
    dataset = write_generic_dataset(tmp_path / "tiny")
    (tmp_path / "taken").write_text("a file")
    result = invoke(
        "run",
        "--dataset",
        str(dataset),
        "--epochs",
        "1",
        "--db",
        "r.db",
        *SMALL,
        "--set",
        "train.checkpoint_dir=taken",
        cwd=tmp_path,
    )
    assert result.exit_code == 2
    assert "existing file" in one_line_error(result) and count_runs(tmp_path / "r.db") == 0


def test_a_checkpoint_recorded_without_a_hash_is_served_with_a_warning(two_databases, tmp_path):
    folder, _, _, _ = two_databases
    work = tmp_path / "copy"
    shutil.copytree(folder, work)
    with sqlite3.connect(work / "a.db") as con:  # as an older kirec recorded it
        con.execute("UPDATE artifacts SET path = replace(path, ?, ?), sha256 = NULL", (str(folder), str(work)))
    result = invoke("recommend", "--run", "1", "--user", "u3", "-k", "3", "--db", "a.db", cwd=work)
    assert result.exit_code == 0, result.output
    assert "without a hash, so it cannot be verified" in " ".join(result.output.split())
