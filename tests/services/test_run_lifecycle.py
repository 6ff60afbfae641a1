"""A run's lifecycle in the store: nothing is left RUNNING (a late error, SIGTERM; a dead writer's run is
test_resume.py's kill -9 test, which every reading command must show INTERRUPTED before it resumes it), read-only
commands never create a database, exports never destroy data, and an unusable database stops `kirec run` first."""

from __future__ import annotations

import hashlib
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

from engine.config import ConfigError
from engine.store import open_store

ROOT = Path(__file__).resolve().parents[2]
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


def statuses(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT status, error FROM runs ORDER BY id").fetchall()


def test_an_error_after_the_run_row_exists_ends_it_failed(tiny_dataset, tmp_path, monkeypatch):
    from engine.evaluation import evaluator

    def refuse(*_args, **_kwargs):
        raise ConfigError("eval.batch_size: must be at least 1, got 0")

    monkeypatch.setattr(evaluator.RankingEvaluator, "__init__", refuse)  # found once the run row exists
    db = tmp_path / "runs.db"
    result = invoke("run", "--dataset", str(tiny_dataset), "--epochs", "1", "--db", str(db), *SMALL, cwd=tmp_path)
    assert result.exit_code == 2 and "eval.batch_size" in result.output and "Traceback" not in result.output
    assert statuses(db) == [("FAILED", "ConfigError: eval.batch_size: must be at least 1, got 0")]


def wait_for_status(db: Path, wanted: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if db.exists():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                try:
                    if [s for (s,) in con.execute("SELECT status FROM runs")] == [wanted]:
                        return
                except sqlite3.OperationalError:
                    pass  # the tables are not there yet
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"the run never became {wanted}"
        time.sleep(0.1)  # polling interval of the store, not a synchronisation


def start_endless_run(tiny_dataset: Path, db: Path, cwd: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "kirec_tui.cli",
        "run",
        "--dataset",
        str(tiny_dataset),
        "--epochs",
        "100000",
        "--patience",
        "100000",
        "--db",
        str(db),
        *SMALL,
    ]
    return subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


@pytest.mark.slow
def test_sigterm_ends_the_run_interrupted(tiny_dataset, tmp_path):
    db = tmp_path / "runs.db"
    proc = start_endless_run(tiny_dataset, db, tmp_path)
    try:
        wait_for_status(db, "RUNNING", proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    assert proc.returncode == 130, stderr[-2000:]
    assert [s for s, _ in statuses(db)] == ["INTERRUPTED"]


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["runs", "show", "1"],
        ["runs", "compare", "1", "2"],
        ["runs", "export"],
        ["runs", "delete", "1", "--yes"],
        ["recommend", "--run", "1", "--user", "u1"],
    ],
)
def test_read_only_commands_never_create_a_database(tmp_path, command):
    result = invoke(*command, "--db", "typo/x.db", cwd=tmp_path)
    assert result.exit_code == 4, result.output
    # named where it was looked for: inside the workspace, by default the current folder
    assert f"no runs database at {tmp_path / 'typo' / 'x.db'}" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no folder, no empty database


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_db(path: Path) -> None:
    with open_store(path) as store:
        run_id = store.create_run("r", {}, "d", "fp", "sasrec", "id", "cpu", params={})
        store.finish_run(run_id, "FINISHED")


def test_export_never_overwrites_the_database_or_an_existing_file(tmp_path):
    db = tmp_path / "x.db"
    make_db(db)
    before = sha256(db)
    for force in ([], ["--force"]):
        for target in ("x.db", str(db), "./x.db", "x.db-wal"):
            result = invoke("runs", "export", "-o", target, "--db", "x.db", *force, cwd=tmp_path)
            assert result.exit_code == 2 and "is the runs database" in result.output, (target, result.output)
    assert sha256(db) == before and statuses(db) == [("FINISHED", None)]

    existing = tmp_path / "runs.csv"
    existing.write_text("keep me\n")
    refused = invoke("runs", "export", "-o", "runs.csv", "--db", "x.db", cwd=tmp_path)
    assert refused.exit_code == 2 and "--force" in refused.output and existing.read_text() == "keep me\n"
    replaced = invoke("runs", "export", "-o", "runs.csv", "--db", "x.db", "--force", cwd=tmp_path)
    assert replaced.exit_code == 0 and existing.read_text().startswith("id,name,status")
    fresh = invoke("runs", "export", "-o", "out/new.json", "--format", "json", "--db", "x.db", cwd=tmp_path)
    assert fresh.exit_code == 0 and json.loads((tmp_path / "out" / "new.json").read_text())[0]["status"] == "FINISHED"
    assert not [p for p in tmp_path.rglob("*.partial")]  # the temporary files were renamed into place


def test_a_read_only_database_stops_kirec_run_before_any_work(tiny_dataset, tmp_path, monkeypatch):
    db = tmp_path / "runs.db"
    make_db(db)
    db.chmod(0o444)
    if os.access(db, os.W_OK):  # root may write any file: let the permission check see what another user would
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode, **kw: False if Path(path) == db and mode & os.W_OK else real_access(path, mode, **kw),
        )
    try:
        result = invoke("run", "--dataset", str(tiny_dataset), "--epochs", "1", "--db", str(db), *SMALL, cwd=tmp_path)
    finally:
        db.chmod(0o644)
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "read-only" in lines[0] and str(db) in " ".join(result.output.split())
    assert not (tmp_path / ".cache").exists()  # the dataset was never loaded
    assert statuses(db) == [("FINISHED", None)]
