"""The `kirec` CLI end to end on a tiny generic-format dataset: run, runs, recommend, item, errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kirec_tui.cli import app

SMALL = ["--method", "id", "--hidden-size", "16", "--max-len", "10", "--batch-size", "32", "--device", "cpu"]


def invoke(*args: str, cwd: Path):
    old = Path.cwd()
    os.chdir(cwd)  # runs.db, checkpoints and caches land in the test's folder
    try:
        return CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def finished_run(tiny_dataset: Path, tmp_path: Path):
    db = tmp_path / "runs.db"
    result = invoke(
        "run", "--dataset", str(tiny_dataset), "--epochs", "2", "--db", str(db), "--json", *SMALL, cwd=tmp_path
    )
    assert result.exit_code == 0, result.output
    return db, json.loads(result.stdout.strip().splitlines()[-1])


def test_run_json_reports_metrics_and_stores_the_run(finished_run, tmp_path):
    db, payload = finished_run
    assert payload["status"] == "FINISHED" and isinstance(payload["run_id"], int)
    for split in ("valid", "test"):
        assert 0.0 <= payload[split]["NDCG@10"] <= payload[split]["HR@10"] <= 1.0
    listed = invoke("runs", "list", "--db", str(db), "--json", cwd=tmp_path)
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [payload["run_id"]] and runs[0]["status"] == "FINISHED"
    assert abs(runs[0]["test_metrics"]["test/NDCG@10"] - payload["test"]["NDCG@10"]) < 1e-9


def test_runs_show_compare_export(finished_run, tiny_dataset, tmp_path):
    db, first = finished_run
    second = invoke(
        "run",
        "--dataset",
        str(tiny_dataset),
        "--epochs",
        "1",
        "--seed",
        "7",
        "--db",
        str(db),
        "--json",
        *SMALL,
        cwd=tmp_path,
    )
    second_id = json.loads(second.stdout.strip().splitlines()[-1])["run_id"]
    shown = invoke("runs", "show", str(first["run_id"]), "--db", str(db), cwd=tmp_path)
    assert shown.exit_code == 0 and "train.epochs" in shown.stdout
    compared = invoke("runs", "compare", str(first["run_id"]), str(second_id), "--db", str(db), cwd=tmp_path)
    assert compared.exit_code == 0
    assert "train.seed" in compared.stdout and "model.backbone" not in compared.stdout  # only what differs
    assert "tags" not in compared.stdout.split("settings")[0]  # no empty tags row when no run has any
    invoke("runs", "tag", str(second_id), "seed-sweep", "--db", str(db), cwd=tmp_path)
    invoke("runs", "note", str(first["run_id"]), "why", "[seed", "7]", "--db", str(db), cwd=tmp_path)
    header = invoke("runs", "compare", str(first["run_id"]), str(second_id), "--db", str(db), cwd=tmp_path)
    header = header.stdout.split("settings")[0]
    assert re.search(r"tags\W+seed-sweep", header) and re.search(r"note\W+why \[seed 7\]", header)
    same = invoke("runs", "compare", str(second_id), str(second_id), "--db", str(db), cwd=tmp_path).stdout
    assert same.count(f"run {second_id}") == 4 and "difference" not in same  # one run: one column in each table
    every = invoke("runs", "compare", str(first["run_id"]), str(second_id), "--all", "--db", str(db), cwd=tmp_path)
    settings, recorded = every.stdout.split("recorded by the runs")
    assert "model.backbone" in settings and "model.parameters" not in settings  # a count the run made, not a setting
    assert "model.parameters" in recorded and "run.duration_seconds" in recorded
    exported = invoke("runs", "export", "--format", "json", "--db", str(db), cwd=tmp_path)
    assert {r["id"] for r in json.loads(exported.stdout)} == {first["run_id"], second_id}


def listed_items(output: str) -> dict[str, bool]:
    """The item ids of `kirec recommend`'s table, each with its "in history" mark."""
    rows = re.findall(r"^\W*\d+\W+(i\d+)\W+Item number \d+\W+-?[\d.]+\W+(yes)?\W*$", output, flags=re.MULTILINE)
    return {item: mark == "yes" for item, mark in rows}


def user_history(dataset: Path, user: str) -> set[str]:
    lines = (dataset / "interactions.csv").read_text().splitlines()[1:]
    return {item for u, item, _ in (line.split(",") for line in lines) if u == user}


def test_recommend_lists_titles_and_excludes_history(finished_run, tiny_dataset, tmp_path):
    db, payload = finished_run
    history = user_history(tiny_dataset, "u3")
    assert 0 < len(history) < 30
    result = invoke(
        "recommend", "--run", str(payload["run_id"]), "--user", "u3", "-k", "5", "--db", str(db), cwd=tmp_path
    )
    assert result.exit_code == 0, result.output
    top5 = listed_items(result.stdout)
    assert len(top5) == 5 and result.stdout.count("Item number") == 5
    assert not set(top5) & history and not any(top5.values())
    # asked for every item, only the ones the user has not seen come back
    everything = listed_items(
        invoke(
            "recommend", "--run", str(payload["run_id"]), "--user", "u3", "-k", "30", "--db", str(db), cwd=tmp_path
        ).stdout
    )
    assert set(everything) == {f"i{i}" for i in range(30)} - history
    # --include-history ranks the whole catalogue, history marked
    included = invoke(
        "recommend",
        "--run",
        str(payload["run_id"]),
        "--user",
        "u3",
        "-k",
        "30",
        "--include-history",
        "--db",
        str(db),
        cwd=tmp_path,
    )
    assert included.exit_code == 0, included.output
    ranked = listed_items(included.stdout)
    assert set(ranked) == {f"i{i}" for i in range(30)}
    assert {item for item, seen in ranked.items() if seen} == history
    unknown = invoke("recommend", "--run", str(payload["run_id"]), "--user", "nobody", "--db", str(db), cwd=tmp_path)
    assert unknown.exit_code == 4 and "nobody" in unknown.output


def test_item_shows_text_and_popularity(tiny_dataset, tmp_path):
    result = invoke("item", "i5", "--dataset", str(tiny_dataset), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "Item number 5" in result.stdout and "popularity" in result.stdout


def test_missing_dataset_is_a_clear_data_error(tmp_path):
    result = invoke(
        "run",
        "--dataset",
        "no-such-data",
        "--data-root",
        str(tmp_path / "empty"),
        "--db",
        str(tmp_path / "r.db"),
        cwd=tmp_path,
    )
    assert result.exit_code == 3
    assert "no-such-data" in result.output and str(tmp_path / "empty") in result.output
    assert not (tmp_path / "r.db").exists() or "RUNNING" not in (tmp_path / "r.db").read_bytes().decode("latin-1")


def test_bad_config_file_names_the_field(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nepochs = 'lots'\n")
    result = invoke("run", "--config", str(config), cwd=tmp_path)
    assert result.exit_code == 2 and "train.epochs" in result.output and "bad.toml" in result.output


def test_unknown_run_exit_code(tmp_path):
    result = invoke("runs", "show", "999", "--db", str(tmp_path / "runs.db"), cwd=tmp_path)
    assert result.exit_code == 4 and "999" in result.output


def test_ctrl_c_marks_the_run_interrupted_and_exits_130(tiny_dataset, tmp_path):
    db = tmp_path / "runs.db"
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
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until training really started (the run is RUNNING)
            if db.exists():
                with sqlite3.connect(db) as con:
                    rows = con.execute("select status from runs").fetchall() if _has_runs(con) else []
                if rows == [("RUNNING",)]:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the run never started")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, proc.stderr.read().decode()[-2000:]
    with sqlite3.connect(db) as con:
        assert con.execute("select status from runs").fetchall() == [("INTERRUPTED",)]


def _has_runs(con) -> bool:
    return bool(con.execute("select 1 from sqlite_master where name='runs'").fetchall())


@pytest.mark.parametrize(
    "setting, field",
    [
        ("knowledge.fusion=bogus", "knowledge.fusion"),
        ("knowledge.semantic_norm=0", "knowledge.semantic_norm"),
        ("train.loss=bogus", "train.loss"),
    ],
)
def test_a_bad_value_found_by_the_engine_is_a_one_line_usage_error(tiny_dataset, tmp_path, setting, field):
    result = invoke(
        "run",
        "--dataset",
        str(tiny_dataset),
        "--db",
        str(tmp_path / "r.db"),
        "--epochs",
        "1",
        "--hidden-size",
        "16",
        "--max-len",
        "10",
        "--device",
        "cpu",
        "--set",
        "knowledge.embed_text=raw",
        "--set",
        setting,
        cwd=tmp_path,
    )
    assert result.exit_code == 2, result.output
    assert field in result.output and "Traceback" not in result.output


def test_runs_delete_asks_hides_and_keeps_the_rows(finished_run, tmp_path):
    db, payload = finished_run
    run_id = str(payload["run_id"])
    declined = CliRunner().invoke(app, ["runs", "delete", run_id, "--db", str(db)], input="n\n")
    assert declined.exit_code == 1 and "Delete run" in declined.output  # aborted: nothing changed
    assert [r["id"] for r in json.loads(invoke("runs", "list", "--db", str(db), "--json", cwd=tmp_path).stdout)] == [
        payload["run_id"]
    ]
    deleted = invoke("runs", "delete", run_id, "--db", str(db), "--yes", cwd=tmp_path)
    assert deleted.exit_code == 0 and f"deleted run {run_id}" in deleted.stdout
    assert json.loads(invoke("runs", "list", "--db", str(db), "--json", cwd=tmp_path).stdout) == []
    shown = invoke("runs", "show", run_id, "--db", str(db), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["summary"]["deleted"] is True  # soft delete: the rows stay
    unknown = invoke("runs", "delete", "999", "--db", str(db), "--yes", cwd=tmp_path)
    assert unknown.exit_code == 4 and "999" in unknown.output


def test_resume_refuses_what_it_cannot_continue(finished_run, tmp_path):
    db, payload = finished_run
    run_id = str(payload["run_id"])
    finished = invoke("run", "--resume", run_id, "--db", str(db), cwd=tmp_path)
    assert finished.exit_code == 2 and "already FINISHED" in finished.output and "Traceback" not in finished.output
    with_flags = invoke("run", "--resume", run_id, "--epochs", "5", "--db", str(db), cwd=tmp_path)
    assert with_flags.exit_code == 2 and "stored config" in with_flags.output and "train.epochs" in with_flags.output
    unknown = invoke("run", "--resume", "999", "--db", str(db), cwd=tmp_path)
    assert unknown.exit_code == 4 and "999" in unknown.output
