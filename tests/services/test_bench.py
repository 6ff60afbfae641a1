"""`kirec bench`: the statistics against hand-computed values, the matrix spec's one-line errors, tuning on the first
seed, reuse of finished runs, and a real kill -9 of a bench subprocess that the next bench continues."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.bench import load_spec, run_bench
from engine.bench.artifacts import load_test_ranks, per_user_metric
from engine.bench.identity import ranks_path
from engine.bench.stats import mean_std, paired_wilcoxon, relative_gain
from engine.bench.table import build_rows, write_results
from engine.config import ConfigError
from engine.evaluation.metrics import ranking_metrics
from engine.store import open_store
from kirec_tui.cli import app

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = """
[config]
"model.hidden_size" = 16
"model.max_len" = 10
"train.batch_size" = 32
"train.device" = "cpu"
"train.epochs" = {epochs}
"train.num_threads" = 1
"knowledge.embed_text" = "raw"
"""


def write_bench(path: Path, dataset: Path, body: str, epochs: int = 1) -> Path:
    path.write_text(body.replace("DATASET", str(dataset)) + TINY_CONFIG.format(epochs=epochs))
    return path


# -- statistics -------------------------------------------------------------------------------------------------


def test_wilcoxon_p_values_match_the_exact_distribution_by_hand():
    # Differences 1..5, all positive: W = 0; of the 2**5 equally likely sign patterns only "all +" reaches it,
    # so the two-sided p is 2 * 1/32.
    assert paired_wilcoxon(np.arange(1, 6) + 0.5, np.full(5, 0.5)).p_value == pytest.approx(2 / 32)
    # Differences 1, -2, 3, 4, 5: W = 2 (the negative rank); sign patterns with a negative-rank sum <= 2 are {},
    # {1}, {2}: p = 2 * 3/32. A zero difference is dropped before ranking, so adding one changes nothing.
    test = paired_wilcoxon(np.array([1.0, -2, 3, 4, 5, 0]), np.zeros(6))
    assert test.p_value == pytest.approx(6 / 32) and test.statistic == 2.0
    assert (test.n_users, test.n_nonzero) == (6, 5)
    # The same users in the other order: the test is paired, not of two samples.
    assert paired_wilcoxon(np.zeros(5), -np.arange(1, 6.0)).p_value == pytest.approx(2 / 32)
    # Equal on every user: no evidence of a difference at all.
    same = paired_wilcoxon(np.array([0.3, 0.0, 1.0]), np.array([0.3, 0.0, 1.0]))
    assert same.p_value == 1.0 and same.n_nonzero == 0


def test_mean_std_is_the_sample_std_and_gain_is_relative():
    three = mean_std([0.10, 0.20, 0.30])
    assert three.mean == pytest.approx(0.20) and three.std == pytest.approx(0.10) and three.n == 3  # ddof 1
    assert mean_std([0.25]).std == 0.0
    assert relative_gain(0.12, 0.10) == pytest.approx(0.20)
    assert relative_gain(0.08, 0.10) == pytest.approx(-0.20)
    assert relative_gain(0.1, 0.0) is None


def test_per_user_metrics_average_to_the_evaluators_metrics():
    ranks = np.array([0, 1, 9, 10, 25])
    ndcg = per_user_metric(ranks, "NDCG", 10)
    assert ndcg == pytest.approx([1.0, 1 / math.log2(3), 1 / math.log2(11), 0.0, 0.0])
    assert per_user_metric(ranks, "HR", 10).tolist() == [1, 1, 1, 0, 0]
    summary = ranking_metrics(ranks, [10, 20])
    assert ndcg.mean() == pytest.approx(summary["NDCG@10"])
    assert per_user_metric(ranks, "NDCG", 20).mean() == pytest.approx(summary["NDCG@20"])


# -- the spec ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, named",
    [
        ('[bench]\nmethods = ["id"]\ndatasets = ["d"]\n[config]\n"train.lrr" = 1\n', "train.lrr"),
        ('[bench]\nmethods = ["id"]\ndatasets = ["d"]\n[config]\n"train.lr" = "fast"\n', "train.lr"),
        ('[bench]\nmethods = ["id"]\ndatasets = ["d"]\n[tune]\n"train.seed" = [1, 2]\n', "train.seed"),
        ('[bench]\nmethods = ["id"]\ndatasets = ["d"]\n[tune]\n"train.lr" = 0.1\n', "train.lr"),
        ('[bench]\nmethods = ["id", "magic"]\ndatasets = ["d"]\n', "bench.methods"),
        ('[bench]\nmethods = ["id"]\ndatasets = ["d"]\nseeds = [1, 1]\n', "bench.seeds"),
        ('[bench]\nmethods = ["kirec"]\ndatasets = ["d"]\nbaseline = "id"\n', "bench.baseline"),
        ('[bench]\nmethods = ["id"]\ndatasets = ["d"]\n[method.kirec]\n"knowledge.fusion" = "add"\n', "method.kirec"),
        ('[bench]\nmethods = ["id"]\ndatasets = ["d"]\ncolour = 1\n', "bench.colour"),
        ('[bench]\nmethods = ["id"]\n', "bench.datasets"),
        ('[bench\nmethods = ["id"]\n', "invalid TOML"),
    ],
)
def test_a_bad_bench_file_is_one_line_naming_the_file_and_key(tmp_path, body, named):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert str(path) in message and named in message and "\n" not in message


def test_the_cli_refuses_a_bad_bench_with_exit_2_and_stores_nothing(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[bench]\nmethods = ["id"]\ndatasets = ["d"]\n[config]\n"model.dropout" = "lots"\n')
    result = CliRunner().invoke(app, ["bench", str(path), "--db", str(tmp_path / "runs.db")], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "model.dropout" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs.db").exists()


def test_the_cli_error_keeps_a_table_name_in_brackets(tmp_path):
    """rich read "[method.kirec]" as markup and printed ": 'kirec' is not one of ...", naming nothing."""
    path = tmp_path / "bad.toml"
    path.write_text('[bench]\nmethods = ["id"]\ndatasets = ["d"]\n[method.kirec]\n"knowledge.fusion" = "add"\n')
    result = CliRunner().invoke(app, ["bench", str(path), "--db", str(tmp_path / "runs.db")], catch_exceptions=False)
    assert result.exit_code == 2 and f"{path}: [method.kirec]: 'kirec' is not one of bench.methods" in result.output


def test_flags_choose_a_subset_of_the_files_methods_without_its_baseline(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(
        '[bench]\nmethods = ["id", "kirec", "unisrec"]\ndatasets = ["d"]\nbaseline = "id"\n'
        '[method.kirec]\n"knowledge.fusion" = "add"\n[method.unisrec]\n"knowledge.unisrec_experts" = 4\n'
    )
    spec = load_spec(path, overrides={"methods": "unisrec"})
    assert spec.methods == ("unisrec",) and spec.baseline is None  # gains need the baseline: none are computed
    assert spec.per_method == {"unisrec": {"knowledge.unisrec_experts": 4}}
    both = load_spec(path, overrides={"methods": "id,kirec"})
    assert both.baseline == "id" and set(both.per_method) == {"kirec"}
    path.write_text(path.read_text().replace("[method.unisrec]", "[method.unisrek]"))
    with pytest.raises(ConfigError, match=r"\[method\.unisrek\]"):  # a table of no listed method is still an error
        load_spec(path, overrides={"methods": "unisrec"})


def test_precedence_puts_the_method_table_over_config_and_flags_over_both(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(
        '[bench]\nmethods = ["id", "add"]\ndatasets = ["d"]\n[config]\n"train.lr" = 0.01\n'
        '"model.dropout" = 0.3\n[method.add]\n"knowledge.method" = "kirec"\n"knowledge.fusion" = "add"\n'
        '"train.lr" = 0.02\n'
    )
    spec = load_spec(path, overrides={"seeds": "7,8"}, flags={"model.dropout": "0.1"})
    cfg = spec.config_for(spec.cell(("d", "sasrec", "add"), 8), "x.db")
    assert (cfg.knowledge.method, cfg.knowledge.fusion, cfg.train.lr, cfg.model.dropout) == ("kirec", "add", 0.02, 0.1)
    assert (cfg.train.seed, cfg.data.dataset, cfg.db) == (8, "d", "x.db")
    assert spec.config_for(spec.cell(("d", "sasrec", "id"), 7), "x.db").train.lr == 0.01
    assert spec.seeds == (7, 8)


# -- running a bench --------------------------------------------------------------------------------------------


def test_tuning_runs_the_grid_on_the_first_seed_and_the_other_seeds_at_the_best_point(tiny_dataset, tmp_path):
    bench = write_bench(
        tmp_path / "tune.toml",
        tiny_dataset,
        '[bench]\nmethods = ["id"]\ndatasets = ["DATASET"]\nseeds = [1, 2]\n[tune]\n"train.lr" = [0.00001, 0.01]\n',
        epochs=2,
    )
    db = tmp_path / "runs.db"
    outcome = run_bench(load_spec(bench), db, cwd=tmp_path)
    assert outcome.complete and outcome.trained == 3  # two grid points on seed 1, then seed 2 at the chosen one
    group = (str(tiny_dataset), "sasrec", "id")
    with open_store(db) as store:
        scores = {
            p["setting"]["train.lr"]: store.get_run(p["run_id"]).valid_metrics["valid/NDCG@10"]
            for p in outcome.tuning[group]
        }
        best = max(scores, key=scores.get)
        assert scores[0.01] != scores[0.00001]  # the grid points really differ, so the choice means something
        assert outcome.chosen[group] == (("train.lr", best),)
        seed2 = [r for r in outcome.runs if r.cell.seed == 2]
        assert len(seed2) == 1 and store.get_run(seed2[0].run_id).config["train"]["lr"] == best
        rows = build_rows(outcome, store)
    assert len(rows) == 1 and rows[0].setting == {"train.lr": best} and rows[0].seeds == [1, 2]
    md, js = write_results(outcome, rows, tmp_path / "out" / "tune", "kirec bench tune.toml", db, ["v"])
    assert f"train.lr={best} **(chosen)**" in md.read_text()
    assert json.loads(js.read_text())["rows"][0]["setting"] == {"train.lr": best}

    # Run again with only a thread count changed: every cell is answered by the store, nothing trains.
    again = run_bench(load_spec(bench, flags={"train.num_threads": "2"}), db, cwd=tmp_path)
    assert again.trained == 0 and [r.run_id for r in again.runs] == [r.run_id for r in outcome.runs]
    # A change that can move the numbers is a new cell.
    changed = run_bench(load_spec(bench, overrides={"seeds": "2"}, flags={"model.dropout": "0.5"}), db, cwd=tmp_path)
    assert changed.trained == 2


def test_a_new_code_version_trains_again_but_table_only_reads_the_old_runs(tiny_dataset, tmp_path, monkeypatch):
    import engine.store.queries as queries

    bench = write_bench(tmp_path / "b.toml", tiny_dataset, '[bench]\nmethods = ["id"]\ndatasets = ["DATASET"]\n')
    db = tmp_path / "runs.db"
    monkeypatch.setattr(queries, "current_code_version", lambda: "0.0.1+gold")
    old = run_bench(load_spec(bench), db, cwd=tmp_path)
    monkeypatch.undo()
    assert old.trained == 1
    # The code changed since: a training bench does not trust the old run, a table-only one reads it.
    read = run_bench(load_spec(bench), db, cwd=tmp_path, table_only=True)
    assert read.trained == 0 and read.runs[0].run_id == old.runs[0].run_id and read.complete
    retrained = run_bench(load_spec(bench), db, cwd=tmp_path)
    assert retrained.trained == 1 and retrained.runs[0].run_id != old.runs[0].run_id
    # A cell with no run at all is listed as missing, and nothing trains.
    partial = run_bench(load_spec(bench, overrides={"seeds": "42,7"}), db, cwd=tmp_path, table_only=True)
    assert partial.trained == 0 and not partial.complete
    assert [c.seed for c in partial.missing] == [7]
    # Without the first seed's run the other seeds are still read (no grid: nothing to choose).
    later = run_bench(load_spec(bench, overrides={"seeds": "7,42"}), db, cwd=tmp_path, table_only=True)
    assert [c.seed for c in later.missing] == [7] and [r.cell.seed for r in later.runs] == [42]
    with open_store(db) as store:
        assert len(store.list_runs()) == 2


def test_runs_keep_per_user_test_ranks_that_reproduce_their_test_metrics(tiny_dataset, tmp_path):
    bench = write_bench(tmp_path / "b.toml", tiny_dataset, '[bench]\nmethods = ["id"]\ndatasets = ["DATASET"]\n')
    outcome = run_bench(load_spec(bench), tmp_path / "runs.db", cwd=tmp_path)
    with open_store(tmp_path / "runs.db") as store:
        detail = store.get_run(outcome.runs[0].run_id)
    ranks = load_test_ranks(ranks_path(detail))
    assert len(ranks.users) == 60 and sorted(ranks.users.tolist()) == list(range(60))
    for key, value in ranking_metrics(ranks.ranks, [10, 20]).items():
        if key.startswith(("HR", "NDCG")):
            assert detail.test_metrics[f"test/{key}"] == pytest.approx(value)
    head = ranking_metrics(ranks.ranks[ranks.target_is_head], [10], suffix="/head")["NDCG@10/head"]
    assert detail.test_metrics["test/NDCG@10/head"] == pytest.approx(head)
    assert float(detail.tags["train_seconds_to_best"]) <= float(detail.tags["train_seconds"])


def test_sampled_protocol_runs_go_in_their_own_labelled_table(tiny_dataset, tmp_path):
    bench = write_bench(
        tmp_path / "b.toml",
        tiny_dataset,
        '[bench]\nmethods = ["id", "id-sampled"]\ndatasets = ["DATASET"]\nbaseline = "id"\n'
        '[method.id-sampled]\n"knowledge.method" = "id"\n"eval.protocol" = "sampled"\n'
        '"eval.num_sampled" = 5\n',
    )
    db = tmp_path / "runs.db"
    outcome = run_bench(load_spec(bench), db, cwd=tmp_path)
    with open_store(db) as store:
        rows = build_rows(outcome, store)
    md, _ = write_results(outcome, rows, tmp_path / "t", "kirec bench b.toml", db, ["v"])
    full, sampled = md.read_text().split("## Sampled negatives")
    assert "## Full ranking" in full and "**id** (baseline)" in full and "id-sampled" not in full
    assert "| id-sampled |" in sampled and "1 positive + 5 negatives" in sampled
    # The baseline was ranked against every item: a sampled row is not compared with it.
    row = next(r for r in rows if r.method == "id-sampled")
    assert row.gain == {} and row.test is None
    assert row.metrics["HR@10"].mean == 1.0  # 6 candidates: every target is in the top 10


def _query_store(db: Path, *queries: str) -> list[list[tuple]]:
    """Each query's rows, read (read-only) from the store while a bench writes it; none before its schema exists."""
    if not db.exists():
        return [[] for _ in queries]
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            return [con.execute(query).fetchall() for query in queries]
    except sqlite3.OperationalError:  # the schema is still being created
        return [[] for _ in queries]


def _finished_rows(db: Path) -> list[tuple[int, str]]:
    return _query_store(db, "select id, method from runs where status = 'FINISHED' order by id")[0]


@pytest.mark.slow
def test_a_bench_killed_mid_matrix_continues_where_it_stopped(tiny_dataset, tmp_path):
    bench = write_bench(
        tmp_path / "b.toml",
        tiny_dataset,
        '[bench]\nmethods = ["id", "kirec"]\ndatasets = ["DATASET"]\nseeds = [1]\n',
        epochs=3,
    )
    db, out = tmp_path / "runs.db", tmp_path / "results" / "b"
    command = [sys.executable, "-m", "kirec_tui.cli", "bench", str(bench), "--db", str(db), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not _finished_rows(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the store's own state, not waiting a guessed time
        assert _finished_rows(db), f"no cell finished (exit {proc.poll()}): {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    first = _finished_rows(db)
    # Killed mid-matrix: the id cell done, the kirec cell not (it loads an encoder first: seconds, not 50 ms).
    assert [m for _, m in first] == ["id"] and not out.with_suffix(".md").exists()

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    finished = _finished_rows(db)
    assert [m for _, m in finished].count("id") == 1  # the finished cell was not trained again
    document = json.loads(out.with_suffix(".json").read_text())
    rows = {r["method"]: r for r in document["rows"]}
    assert set(rows) == {"id", "kirec"} and document["complete"]
    assert rows["id"]["run_ids"] == [first[0][0]]
    assert rows["kirec"]["wilcoxon"]["users"] == 60 and 0.0 <= rows["kirec"]["wilcoxon"]["p_value"] <= 1.0
    markdown = out.with_suffix(".md").read_text()
    assert f"`kirec bench {bench} --db {db} --out {out}`" in markdown


@pytest.mark.slow
def test_jobs_train_cells_in_parallel_processes_with_the_same_results(tiny_dataset, tmp_path):
    bench = write_bench(
        tmp_path / "b.toml",
        tiny_dataset,
        '[bench]\nmethods = ["id"]\ndatasets = ["DATASET"]\nseeds = [1, 2, 3]\n',
        epochs=2,
    )
    parallel = run_bench(load_spec(bench), tmp_path / "a.db", cwd=tmp_path, jobs=2)
    serial = run_bench(load_spec(bench), tmp_path / "b.db", cwd=tmp_path, jobs=1)
    assert parallel.complete and parallel.trained == 3 and [r.cell.seed for r in parallel.runs] == [1, 2, 3]
    with open_store(tmp_path / "a.db") as a, open_store(tmp_path / "b.db") as b:
        for p, s in zip(parallel.runs, serial.runs):
            left, right = a.get_run(p.run_id), b.get_run(s.run_id)
            assert left.config["train"]["seed"] == right.config["train"]["seed"] == p.cell.seed
            assert left.test_metrics["test/NDCG@10"] == pytest.approx(right.test_metrics["test/NDCG@10"], abs=1e-6)
            assert ranks_path(left) is not None


def _run_statuses(db: Path) -> tuple[list[str], int]:
    """(every run's status, epochs recorded by running runs)."""
    statuses, epochs = _query_store(
        db,
        "select status from runs order by id",
        "select count(*) from metrics m join runs r on r.id = m.run_id "
        "where r.status = 'RUNNING' and m.key = 'valid/NDCG@10' and m.step is not null",
    )
    return [s for (s,) in statuses], epochs[0][0] if epochs else 0


def _start_long_parallel_bench(tiny_dataset: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    """A bench of three long cells (a tuning grid), two at a time, once two epochs are in the store. It runs in a
    session of its own, so a test can end it and every worker with one killpg whatever happens."""
    bench = write_bench(
        tmp_path / "b.toml",
        tiny_dataset,
        '[bench]\nmethods = ["id"]\ndatasets = ["DATASET"]\nseeds = [1]\n[method.id]\n"train.patience" = 10000\n'
        '[tune]\n"model.dropout" = [0.1, 0.2, 0.3]\n',
        epochs=2000,
    )
    db, out = tmp_path / "runs.db", tmp_path / "results" / "b"
    command = [sys.executable, "-m", "kirec_tui.cli", "bench", str(bench), "--db", str(db), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        command + ["--jobs", "2"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while _run_statuses(db)[1] < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the store's own state: the cells have trained epochs
    if _run_statuses(db)[1] < 2:
        _end_session(proc)
        pytest.fail(f"no cell trained (exit {proc.poll()})")
    return proc, db, out


def _session_alive(proc: subprocess.Popen) -> bool:
    """Whether any process of the bench's session is still running (zombies aside: nobody may reap them here)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[3]) == proc.pid:  # state and session: fields 3 and 6 of stat
                return True
    return False


def _end_session(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


@pytest.mark.slow
def test_sigterm_stops_a_parallel_bench_at_its_cells_next_step(tiny_dataset, tmp_path):
    # Before the fix the stop reached only the bench process, which waited for every cell of the phase to finish
    # (a real bench: an hour) and then called the bench complete.
    proc, db, out = _start_long_parallel_bench(tiny_dataset, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)  # 2,000 epochs a cell: only a stop that reached them ends this
    finally:
        _end_session(proc)
    assert proc.returncode == 130, stderr[-2000:]
    statuses, _ = _run_statuses(db)
    # The running cells ended INTERRUPTED (resumable: a rerun trains them again), the third never started.
    assert statuses and set(statuses) == {"INTERRUPTED"} and len(statuses) <= 2
    assert "stopping the running cells" in " ".join(stderr.split())  # rich wraps long lines
    assert not json.loads(out.with_suffix(".json").read_text())["complete"]  # the table of what finished says so
    assert "Budget per cell" not in out.with_suffix(".md").read_text()  # no cell finished: no limits to list


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent's death reaches its children on Linux")
def test_a_parallel_bench_killed_outright_leaves_no_cell_training(tiny_dataset, tmp_path):
    # Before the fix its workers trained on, orphaned, writing runs that the next bench marks INTERRUPTED.
    proc, db, _ = _start_long_parallel_bench(tiny_dataset, tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 120
        while "RUNNING" in _run_statuses(db)[0] and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the store: each orphaned cell ends its run at its next step
        statuses, _ = _run_statuses(db)
        deadline = time.monotonic() + 60
        while _session_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting on the processes' own state: the workers exit once their cells ended
        left = _session_alive(proc)
    finally:
        _end_session(proc)
    assert statuses and set(statuses) == {"INTERRUPTED"}, statuses
    assert not left  # no worker (nor multiprocessing's resource tracker) lingers, idle, holding a torch


def test_the_table_counts_epochs_trained_not_validations(tiny_dataset, tmp_path):
    bench = write_bench(
        tmp_path / "every.toml",
        tiny_dataset,
        '[bench]\nmethods = ["id"]\ndatasets = ["DATASET"]\nseeds = [1]\n',
        epochs=3,
    )
    bench.write_text(bench.read_text() + '"eval.every" = 2\n"train.patience" = 5\n')
    db = tmp_path / "runs.db"
    outcome = run_bench(load_spec(bench), db, cwd=tmp_path)
    with open_store(db) as store:
        assert len(store.metric_history(outcome.runs[0].run_id, "valid/NDCG@10")) == 2  # epochs 2 and 3
        (row,) = build_rows(outcome, store)
    assert row.epochs_run == [3] and row.best_epochs[0] in (2, 3)


def test_table_only_never_replaces_a_table_nor_makes_a_database(tiny_dataset, tmp_path, monkeypatch):
    """A --table-only read of a database without the runs (a wrong --db, a cleaned workspace) once replaced a
    committed table with one of empty cells, and created the database it was pointed at."""
    monkeypatch.chdir(tmp_path)
    bench = write_bench(tmp_path / "b.toml", tiny_dataset, '[bench]\nmethods = ["id"]\ndatasets = ["DATASET"]\n')
    out = tmp_path / "results" / "b"
    made = CliRunner().invoke(app, ["bench", str(bench), "--db", "runs.db", "--out", str(out)], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    table = {suffix: out.with_suffix(suffix).read_bytes() for suffix in (".md", ".json")}
    with open_store(tmp_path / "other.db") as store:  # a real database that holds none of the bench's runs
        assert store.list_runs() == []
    for db in ("other.db", "missing.db"):
        read = CliRunner().invoke(
            app, ["bench", str(bench), "--db", db, "--out", str(out), "--table-only"], catch_exceptions=False
        )
        said = read.output.strip().splitlines()[-1]
        assert read.exit_code != 0 and said.startswith("error: ") and db in said, read.output
        assert {suffix: out.with_suffix(suffix).read_bytes() for suffix in table} == table
    assert not (tmp_path / "missing.db").exists()


def test_baseline_flag_compares_every_row_with_another_method_of_the_bench(tiny_dataset, tmp_path):
    """--baseline: the question "does B add to A" is a paired test of B against A, not of each against id."""
    body = (
        '[bench]\nmethods = ["id", "id-d5"]\ndatasets = ["DATASET"]\n'
        '[method.id-d5]\n"knowledge.method" = "id"\n"model.dropout" = 0.5\n'
    )
    bench = write_bench(tmp_path / "b.toml", tiny_dataset, body)
    db, out = str(tmp_path / "runs.db"), tmp_path / "t"
    made = CliRunner().invoke(app, ["bench", str(bench), "--db", db, "--out", str(out)], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    against_id = json.loads(out.with_suffix(".json").read_text())
    read = CliRunner().invoke(
        app,
        ["bench", str(bench), "--db", db, "--out", str(out), "--table-only", "--baseline", "id-d5"],
        catch_exceptions=False,
    )
    assert read.exit_code == 0, read.output
    table = json.loads(out.with_suffix(".json").read_text())
    assert table["baseline"] == "id-d5" and "--baseline id-d5" in table["command"]
    rows = {r["method"]: r for r in table["rows"]}
    before = {r["method"]: r for r in against_id["rows"]}
    assert rows["id-d5"]["baseline"] and not rows["id"]["baseline"]
    assert rows["id"]["run_ids"] == before["id"]["run_ids"]  # the same runs, read again
    gain = rows["id"]["test"]["NDCG@10"]["mean"] / rows["id-d5"]["test"]["NDCG@10"]["mean"] - 1
    assert rows["id"]["gain"]["NDCG@10"] == pytest.approx(gain)
    assert rows["id"]["gain"]["NDCG@10"] == pytest.approx(
        -before["id-d5"]["gain"]["NDCG@10"] / (1 + before["id-d5"]["gain"]["NDCG@10"])
    )
    with open_store(db) as store:  # the validation score selection used, beside the test scores
        valid = [store.get_run(i).valid_metrics["valid/NDCG@10"] for i in rows["id"]["run_ids"]]
    assert rows["id"]["valid"]["NDCG@10"]["mean"] == pytest.approx(float(np.mean(valid)))
    bad = CliRunner().invoke(app, ["bench", str(bench), "--db", db, "--table-only", "--baseline", "nope"])
    assert bad.exit_code == 2 and "bench.baseline" in bad.output
