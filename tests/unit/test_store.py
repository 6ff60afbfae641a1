"""The runs store (engine.store): round trips, listings, concurrency, schema versions and the event recorder."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlmodel import SQLModel

import engine
from engine.events import (
    EPOCH_SECONDS,
    DeviceStats,
    EpochEnd,
    EpochStarted,
    RunFinished,
    RunStarted,
    Status,
    StepLoss,
)
from engine.store import (
    SCHEMA_VERSION,
    MetricPoint,
    RunComparison,
    RunDetail,
    RunNotFoundError,
    RunStatus,
    RunStore,
    RunSummary,
    SchemaTooNewError,
    StoreError,
    StoreRecorder,
    current_code_version,
    open_store,
)


@pytest.fixture
def store(tmp_path: Path):
    with open_store(tmp_path / "runs.db") as opened:
        yield opened


def make_run(store: RunStore, name: str = "run", **overrides) -> int:
    values = dict(
        config={"train": {"lr": 0.001, "epochs": 3}, "model": {"backbone": "sasrec"}},
        dataset="ml-latest-small",
        dataset_fingerprint="fp-123",
        backbone="sasrec",
        method="id",
        device="cpu",
        params={"train.lr": 0.001, "knowledge": {"fusion": "gate", "prompt_hash": "p1"}, "eval.ks": [5, 10]},
        tags=None,
        code_version="test-version",
    )
    values.update(overrides)
    return store.create_run(name, **values)


def raw(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


# -- round trips ---------------------------------------------------------------------------------------------


def test_round_trip_returns_plain_frozen_objects(store: RunStore):
    run_id = make_run(store, "sasrec-gate", tags={"owner": "ana"})
    store.log_metrics(run_id, {"train/loss": 2.5, "valid/NDCG@10": 0.10}, step=1)
    store.log_metrics(run_id, {"train/loss": 2.0, "valid/NDCG@10": 0.12}, step=2)
    store.log_metrics(run_id, {"valid/NDCG@10": 0.12, "test/NDCG@10": 0.11, "test/HR@10": 0.2}, step=None)
    store.log_artifact(run_id, "checkpoint", Path("/ckpt/best.pt"))
    store.set_tags(run_id, {"owner": "bo", "note": "first try"})
    store.set_tags(run_id, {"note": None})
    store.finish_run(run_id, RunStatus.FINISHED)

    detail = store.get_run(run_id)
    assert isinstance(detail, RunDetail) and not isinstance(detail, SQLModel)
    with pytest.raises(dataclasses.FrozenInstanceError):
        detail.summary.name = "changed"  # type: ignore[misc]
    summary = detail.summary
    assert (summary.id, summary.name, summary.status) == (run_id, "sasrec-gate", RunStatus.FINISHED)
    assert (summary.dataset, summary.method, summary.backbone, summary.device) == (
        "ml-latest-small",
        "id",
        "sasrec",
        "cpu",
    )
    assert (summary.fusion, summary.prompt) == ("gate", "p1")
    assert summary.ended_at is not None and summary.ended_at >= summary.started_at
    assert summary.duration_seconds == pytest.approx((summary.ended_at - summary.started_at).total_seconds(), abs=1e-5)
    assert detail.config == {"train": {"lr": 0.001, "epochs": 3}, "model": {"backbone": "sasrec"}}
    assert detail.params == {
        "train.lr": "0.001",
        "knowledge.fusion": "gate",
        "knowledge.prompt_hash": "p1",
        "eval.ks": "[5, 10]",
    }
    assert detail.tags == {"owner": "bo"}
    assert [(a.kind, a.path) for a in detail.artifacts] == [("checkpoint", "/ckpt/best.pt")]
    assert detail.valid_metrics == {"valid/NDCG@10": 0.12}
    assert detail.test_metrics == {"test/NDCG@10": 0.11, "test/HR@10": 0.2}
    assert (detail.dataset_fingerprint, detail.code_version, detail.error) == ("fp-123", "test-version", None)
    assert detail.hostname == socket.gethostname() and detail.pid is not None

    history = store.metric_history(run_id, "valid/NDCG@10")
    assert [(p.step, p.value) for p in history] == [(1, 0.10), (2, 0.12)]  # the final value is not a step
    assert all(isinstance(p, MetricPoint) for p in history)

    [listed] = store.list_runs()
    assert isinstance(listed, RunSummary)
    assert listed == summary


def test_final_metrics_are_replaced_and_nan_survives(store: RunStore):
    run_id = make_run(store)
    store.log_metrics(run_id, {"test/NDCG@10": 0.1}, step=None)
    store.log_metrics(run_id, {"test/NDCG@10": 0.3}, step=None)
    store.log_metrics(run_id, {"train/loss": float("nan")}, step=1)
    assert store.get_run(run_id).test_metrics == {"test/NDCG@10": 0.3}
    [point] = store.metric_history(run_id, "train/loss")
    assert math.isnan(point.value)


def test_failed_run_keeps_its_error(store: RunStore):
    run_id = make_run(store)
    store.finish_run(run_id, "FAILED", error="CUDA out of memory")
    detail = store.get_run(run_id)
    assert detail.summary.status is RunStatus.FAILED and detail.error == "CUDA out of memory"
    with pytest.raises(ValueError, match="final status"):
        store.finish_run(run_id, "RUNNING")
    with pytest.raises(ValueError, match="unknown run status 'DONE'"):
        store.finish_run(run_id, "DONE")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_run(424242),
        lambda s: s.log_metrics(424242, {"train/loss": 1.0}, step=1),
        lambda s: s.log_artifact(424242, "checkpoint", "x.pt"),
        lambda s: s.set_tags(424242, {"a": "b"}),
        lambda s: s.finish_run(424242, "FINISHED"),
        lambda s: s.metric_history(424242, "train/loss"),
        lambda s: s.compare_runs([424242]),
        lambda s: s.soft_delete(424242),
        lambda s: s.export_runs([424242], "json"),
    ],
)
def test_unknown_run_id_names_the_id(store: RunStore, call):
    with pytest.raises(RunNotFoundError, match="424242"):
        call(store)


def test_code_version_starts_with_the_engine_version(store: RunStore):
    assert current_code_version().startswith(engine.__version__)
    run_id = store.create_run("r", {}, "d", "fp", "sasrec", "id", "cpu", params={})
    assert store.get_run(run_id).code_version == current_code_version()


# -- listings ------------------------------------------------------------------------------------------------


def test_list_filters_text_search_and_ordering(store: RunStore):
    a = make_run(store, "alpha", dataset="ml-latest-small", method="id", backbone="sasrec")
    b = make_run(
        store, "beta_100%", dataset="amazon-beauty", method="kirec", backbone="gru4rec", tags={"note": "Gate sweep"}
    )
    c = make_run(store, "gamma", dataset="amazon-beauty", method="kirec", backbone="bert4rec")
    store.log_metrics(a, {"test/NDCG@10": 0.05}, step=None)
    store.log_metrics(c, {"test/NDCG@10": 0.09}, step=None)
    store.finish_run(a, "FINISHED")
    store.finish_run(b, "FAILED", "boom")

    def ids(**kwargs) -> list[int]:
        return [r.id for r in store.list_runs(**kwargs)]

    assert ids() == [c, b, a]  # newest first
    assert ids(descending=False) == [a, b, c]
    assert ids(status="RUNNING") == [c]
    assert ids(status=RunStatus.FAILED) == [b]
    assert ids(dataset="amazon-beauty") == [c, b]
    assert ids(method="kirec", dataset="amazon-beauty", status="FAILED") == [b]
    assert ids(text="GAMMA") == [c]  # case-insensitive
    assert ids(text="gate sw") == [b]  # a tag value
    assert ids(text="bert4") == [c]  # the backbone
    assert ids(text="_100%") == [b]  # LIKE wildcards are literal
    assert ids(text="t%1") == []  # would match "beta_1..." if % were a wildcard
    assert ids(order_by="name", descending=False) == [a, b, c]
    assert ids(order_by="test/NDCG@10") == [c, a, b]  # runs without the metric come last
    assert ids(order_by="test/NDCG@10", descending=False) == [a, c, b]
    assert ids(order_by="duration", descending=False)[-1] == c  # still running: no duration, last
    assert ids(limit=2) == [c, b]
    assert store.list_runs(order_by="test/NDCG@10", limit=1)[0].test_metrics == {"test/NDCG@10": 0.09}
    with pytest.raises(ValueError, match="cannot order runs by 'colour'"):
        store.list_runs(order_by="colour")


def test_list_runs_uses_a_bounded_number_of_statements(store: RunStore):
    n_runs = 2000
    now = time.time()
    with store.engine.begin() as conn:  # seed directly: 2,000 create_run transactions would only slow the test
        conn.execute(
            text(
                "INSERT INTO runs (id, name, status, config_json, dataset, dataset_fingerprint, backbone, method,"
                " code_version, device, started_at, ended_at, deleted)"
                " VALUES (:id, :name, 'FINISHED', '{}', 'd', 'fp', 'sasrec', 'kirec', 'v', 'cpu', :start, :end, 0)"
            ),
            [{"id": i, "name": f"run-{i}", "start": now + i, "end": now + i + 10} for i in range(1, n_runs + 1)],
        )
        conn.execute(
            text("INSERT INTO params (run_id, key, value) VALUES (:id, 'knowledge.fusion', :fusion)"),
            [{"id": i, "fusion": "add" if i % 2 else "gate"} for i in range(1, n_runs + 1)],
        )
        conn.execute(
            text("INSERT INTO metrics (run_id, key, step, value, timestamp) VALUES (:id, :key, :step, :value, 0)"),
            [{"id": i, "key": "test/NDCG@10", "step": None, "value": i / 10000} for i in range(1, n_runs + 1)]
            + [{"id": i, "key": "valid/NDCG@10", "step": 1, "value": 0.5} for i in range(1, n_runs + 1)],
        )
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        runs = store.list_runs()
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(runs) == n_runs
    assert len(statements) <= 3, statements  # BEGIN, the runs, their final test metrics
    assert runs[0].id == n_runs and runs[0].fusion == "gate" and runs[0].test_metrics == {"test/NDCG@10": 0.2}
    assert runs[-1].id == 1 and runs[-1].fusion == "add" and runs[-1].duration_seconds == pytest.approx(10)


def test_compare_shows_only_differing_params(store: RunStore):
    a = make_run(store, "a", params={"train.lr": 0.001, "knowledge.fusion": "gate", "model.hidden_size": 64})
    b = make_run(store, "b", params={"train.lr": 0.01, "knowledge.fusion": "gate", "model.hidden_size": 64, "x": 1})
    store.log_metrics(a, {"test/NDCG@10": 0.1, "valid/NDCG@10": 0.2}, step=None)
    store.log_metrics(b, {"test/NDCG@10": 0.3}, step=None)

    comparison = store.compare_runs([b, a, b])
    assert isinstance(comparison, RunComparison)
    assert comparison.run_ids == (b, a)
    assert comparison.differing_params == {"train.lr": ("0.01", "0.001"), "x": ("1", None)}
    assert comparison.params["knowledge.fusion"] == ("gate", "gate")
    assert set(comparison.params) == {"train.lr", "knowledge.fusion", "model.hidden_size", "x"}
    assert comparison.metrics == {"test/NDCG@10": (0.3, 0.1), "valid/NDCG@10": (None, 0.2)}
    assert [r.id for r in comparison.runs] == [b, a]


def test_soft_delete_hides_the_run_but_keeps_its_rows(store: RunStore):
    kept = make_run(store, "kept")
    gone = make_run(store, "gone", tags={"k": "v"})
    store.log_metrics(gone, {"train/loss": 1.0}, step=1)
    store.log_artifact(gone, "checkpoint", "gone.pt")
    store.soft_delete(gone)

    assert [r.id for r in store.list_runs()] == [kept]
    assert {r.id: r.deleted for r in store.list_runs(include_deleted=True)} == {kept: False, gone: True}
    assert store.get_run(gone).summary.deleted
    db = store.path
    for table in ("runs", "params", "metrics", "artifacts", "tags"):
        key = "id" if table == "runs" else "run_id"
        assert raw(db, f"SELECT COUNT(*) FROM {table} WHERE {key} = ?", gone)[0][0] > 0, table


def test_labels_and_note_are_kept_listed_matched_and_removed_with_the_run(store: RunStore):
    a = make_run(store, "a")
    b = make_run(store, "b")
    store.set_labels(a, ["baseline", "sweep", "baseline"])
    store.add_labels(b, ["sweep"])
    store.add_labels(b, ["sweep", "gate"])  # adding one it has already changes nothing
    store.set_note(a, "  lr 1e-3 diverged  ")
    store.remove_labels(a, ["sweep", "absent"])

    listed = {r.id: r for r in store.list_runs()}
    assert listed[a].labels == ("baseline",) and listed[a].note == "lr 1e-3 diverged"
    assert listed[b].labels == ("gate", "sweep") and listed[b].note is None
    assert store.get_run(b).summary.labels == ("gate", "sweep")
    assert [r.id for r in store.list_runs(label="sweep")] == [b]
    assert [r.id for r in store.list_runs(label="swe")] == []  # exact, unlike the text filter
    assert [r.id for r in store.list_runs(text="BASE")] == [a]  # a label, case-insensitively
    assert [r.id for r in store.list_runs(text="diverged")] == [a]  # the note
    store.set_note(a, "   ")
    store.set_labels(a, [])
    assert store.get_run(a).summary.note is None and store.get_run(a).summary.labels == ()
    for bad in (["two words"], [""], ["a,b"], ["x" * 65]):
        with pytest.raises(ValueError, match="tag"):
            store.add_labels(b, bad)
    for write in (lambda: store.set_labels(424242, ["x"]), lambda: store.set_note(424242, "x")):
        with pytest.raises(RunNotFoundError):
            write()


def test_restore_lists_a_deleted_run_again(store: RunStore):
    run_id = make_run(store, "back")
    store.soft_delete(run_id)
    assert store.list_runs() == []
    store.restore(run_id)
    assert [r.id for r in store.list_runs()] == [run_id] and not store.get_run(run_id).summary.deleted
    with pytest.raises(RunNotFoundError):
        store.restore(424242)


def test_export_json_carries_the_curves_and_the_labels(store: RunStore):
    a = make_run(store, "a")
    store.log_metrics(a, {"valid/NDCG@10": 0.1, "train/loss": 3.0}, step=1)
    store.log_metrics(a, {"valid/NDCG@10": float("nan"), "train/loss": 2.0}, step=2)
    store.log_metrics(a, {"test/NDCG@10": 0.2}, step=None)
    store.set_labels(a, ["keep", "best"])
    store.set_note(a, "the one")

    (document,) = json.loads(store.export_runs([a], "json", curves=True))
    assert document["curves"] == {
        "train/loss": [{"step": 1, "value": 3.0}, {"step": 2, "value": 2.0}],
        "valid/NDCG@10": [{"step": 1, "value": 0.1}, {"step": 2, "value": None}],  # NaN: strict JSON
    }
    assert document["labels"] == ["best", "keep"] and document["note"] == "the one"
    assert "curves" not in json.loads(store.export_runs([a], "json"))[0]
    (row,) = csv.DictReader(io.StringIO(store.export_runs([a], "csv")))
    assert row["labels"] == "best keep" and row["note"] == "the one"
    with pytest.raises(ValueError, match="JSON only"):
        store.export_runs([a], "csv", curves=True)


def test_export_csv_and_json_parse_back(store: RunStore):
    a = make_run(store, "a, with comma", tags={"t": "1"})
    b = make_run(store, "b")
    deleted = make_run(store, "deleted")
    store.log_metrics(a, {"test/NDCG@10": 0.125, "valid/HR@10": 0.5}, step=None)
    store.log_artifact(a, "checkpoint", "a.pt")
    store.finish_run(a, "FINISHED")
    store.soft_delete(deleted)

    rows = list(csv.DictReader(io.StringIO(store.export_runs(None, "csv"))))
    assert [int(r["id"]) for r in rows] == [a, b]
    assert rows[0]["name"] == "a, with comma" and rows[0]["status"] == "FINISHED"
    assert float(rows[0]["test/NDCG@10"]) == 0.125 and float(rows[0]["valid/HR@10"]) == 0.5
    assert rows[1]["test/NDCG@10"] == ""
    assert rows[0]["param.knowledge.fusion"] == "gate" and rows[0]["fusion"] == "gate"
    assert float(rows[0]["duration_seconds"]) >= 0 and rows[1]["duration_seconds"] == ""

    documents = json.loads(store.export_runs([b, a], "json"))
    assert [d["id"] for d in documents] == [b, a]
    assert documents[1]["metrics"] == {"valid": {"valid/HR@10": 0.5}, "test": {"test/NDCG@10": 0.125}}
    assert documents[1]["config"]["train"]["lr"] == 0.001
    assert documents[1]["tags"] == {"t": "1"}
    assert documents[1]["artifacts"][0]["path"] == "a.pt"
    assert documents[1]["params"]["train.lr"] == "0.001"
    with pytest.raises(ValueError, match="'xml'"):
        store.export_runs(None, "xml")  # type: ignore[arg-type]


def test_last_change_moves_on_writes_only(store: RunStore):
    first = store.last_change()
    run_id = make_run(store)
    after_create = store.last_change()
    store.list_runs()
    store.get_run(run_id)
    assert store.last_change() == after_create > first
    store.finish_run(run_id, "FINISHED")
    assert store.last_change() > after_create


def test_mark_orphans_interrupts_runs_of_dead_local_processes(store: RunStore):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = make_run(store, "orphan")
    alive = make_run(store, "alive")  # written by this very process
    elsewhere = make_run(store, "elsewhere")
    finished = make_run(store, "finished")
    store.log_metrics(orphan, {"train/loss": 1.0}, step=1)
    store.finish_run(finished, "FINISHED")
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET pid = :pid WHERE id IN (:a, :b, :c)"),
            {"pid": dead.pid, "a": orphan, "b": elsewhere, "c": finished},
        )
        conn.execute(text("UPDATE runs SET hostname = 'another-host' WHERE id = :id"), {"id": elsewhere})

    assert store.mark_orphans() == [orphan]
    statuses = {r.id: r.status for r in store.list_runs()}
    assert statuses == {
        orphan: RunStatus.INTERRUPTED,
        alive: RunStatus.RUNNING,
        elsewhere: RunStatus.RUNNING,
        finished: RunStatus.FINISHED,
    }
    detail = store.get_run(orphan)
    assert str(dead.pid) in (detail.error or "")
    assert detail.summary.ended_at == store.metric_history(orphan, "train/loss")[-1].timestamp
    assert store.mark_orphans() == []


# -- connections and concurrency -----------------------------------------------------------------------------


def test_every_fresh_connection_has_the_pragmas(store: RunStore):
    store.engine.dispose()  # drop pooled connections: the next one is opened now
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL


def test_the_caches_open_their_files_with_the_stores_settings(tmp_path):
    """One set of SQLite settings for every kirec file (engine/sqlite_files.py): WAL, the busy timeout, NORMAL sync."""
    from engine.extraction.cache import ExtractionCache
    from engine.semantic.embedding_cache import EmbeddingCache

    for cache in (ExtractionCache(tmp_path / "extractions.sqlite"), EmbeddingCache(tmp_path / "embeddings")):
        with cache:
            conn = cache._conn
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_deleting_a_run_row_cascades_to_its_children(store: RunStore):
    run_id = make_run(store, tags={"k": "v"})
    store.log_metrics(run_id, {"train/loss": 1.0}, step=1)
    store.log_artifact(run_id, "checkpoint", "x.pt")
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM runs WHERE id = :id"), {"id": run_id})
    for table in ("params", "metrics", "artifacts", "tags"):
        assert raw(store.path, f"SELECT COUNT(*) FROM {table}")[0][0] == 0, table


WRITES_PER_PROCESS = 120


def _write_metrics_in_child(db: str, shared_run: int, worker: int, barrier) -> None:
    """Runs in a spawned process: its own store, one transaction per log call, as `kirec run` does."""
    store = open_store(db)
    own_run = store.create_run(
        f"worker-{worker}", {}, "d", "fp", "sasrec", "id", "cpu", {"worker": worker}, code_version="v"
    )
    barrier.wait(timeout=60)
    for step in range(WRITES_PER_PROCESS):
        store.log_metrics(shared_run, {f"worker{worker}/loss": float(step), f"worker{worker}/aux": 1.0}, step=step)
        store.log_metrics(own_run, {"train/loss": float(step)}, step=step)
    store.finish_run(own_run, "FINISHED")
    store.close()


def test_two_processes_write_at_once_while_a_reader_polls(tmp_path: Path):
    db = tmp_path / "runs.db"
    with open_store(db) as store:
        shared_run = make_run(store, "shared")
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(3)
        workers = [
            context.Process(target=_write_metrics_in_child, args=(str(db), shared_run, worker, barrier))
            for worker in (1, 2)
        ]
        for process in workers:
            process.start()
        barrier.wait(timeout=60)
        polls = 0
        while any(p.is_alive() for p in workers):  # a TUI polling while they write
            store.last_change()
            store.list_runs()
            polls += 1
        for process in workers:
            process.join(timeout=60)
        assert [p.exitcode for p in workers] == [0, 0]
        assert polls > 0
        for worker in (1, 2):
            history = store.metric_history(shared_run, f"worker{worker}/loss")
            assert [p.step for p in history] == list(range(WRITES_PER_PROCESS))
        assert raw(db, "SELECT COUNT(*) FROM metrics WHERE run_id = ?", shared_run)[0][0] == 4 * WRITES_PER_PROCESS
        own_runs = [r for r in store.list_runs() if r.name.startswith("worker-")]
        assert sorted(r.status for r in own_runs) == [RunStatus.FINISHED, RunStatus.FINISHED]
        for run in own_runs:
            assert len(store.metric_history(run.id, "train/loss")) == WRITES_PER_PROCESS


# -- schema versions, bad files --------------------------------------------------------------------------------

# The layout of schema version 1, frozen here as it was written then.
VERSION_1_SCHEMA = """
CREATE TABLE runs (
    id INTEGER NOT NULL, name VARCHAR NOT NULL, status VARCHAR NOT NULL, config_json VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL, dataset_fingerprint VARCHAR NOT NULL, backbone VARCHAR NOT NULL,
    method VARCHAR NOT NULL, code_version VARCHAR NOT NULL, device VARCHAR NOT NULL,
    started_at FLOAT NOT NULL, ended_at FLOAT, error VARCHAR, PRIMARY KEY (id));
CREATE TABLE params (run_id INTEGER NOT NULL, "key" VARCHAR NOT NULL, value VARCHAR NOT NULL,
    PRIMARY KEY (run_id, "key"), FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE);
CREATE TABLE metrics (id INTEGER NOT NULL, run_id INTEGER NOT NULL, "key" VARCHAR NOT NULL, step INTEGER,
    value FLOAT, timestamp FLOAT NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE);
CREATE INDEX ix_metrics_run_key_step ON metrics (run_id, "key", step);
CREATE TABLE artifacts (id INTEGER NOT NULL, run_id INTEGER NOT NULL, kind VARCHAR NOT NULL, path VARCHAR NOT NULL,
    created_at FLOAT NOT NULL, PRIMARY KEY (id), FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE);
CREATE INDEX ix_artifacts_run_id ON artifacts (run_id);
CREATE TABLE tags (run_id INTEGER NOT NULL, "key" VARCHAR NOT NULL, value VARCHAR NOT NULL,
    PRIMARY KEY (run_id, "key"), FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE);
INSERT INTO runs VALUES (7, 'old run', 'FINISHED', '{"train": {"lr": 0.01}}', 'ml-100k', 'fp-old', 'gru4rec', 'id',
    '0.0.9', 'cpu', 1700000000.0, 1700000060.0, NULL);
INSERT INTO params VALUES (7, 'knowledge.fusion', 'add');
INSERT INTO metrics (run_id, "key", step, value, timestamp) VALUES
    (7, 'valid/NDCG@10', 1, 0.1, 1700000030.0), (7, 'valid/NDCG@10', 2, 0.2, 1700000050.0),
    (7, 'test/NDCG@10', NULL, 0.15, 1700000060.0);
INSERT INTO artifacts (run_id, kind, path, created_at) VALUES (7, 'checkpoint', 'old.pt', 1700000060.0);
INSERT INTO tags VALUES (7, 'note', 'legacy');
PRAGMA user_version = 1;
"""


def schema_of(db: Path) -> dict[str, object]:
    """Columns, indexes and foreign keys of every table, as SQLite reports them (spelling-independent)."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        layout: dict[str, object] = {}
        for table in tables:
            columns = [(c[1], c[2], c[3], c[4], c[5]) for c in conn.execute(f"PRAGMA table_info({table})")]
            indexes = sorted(
                (i[1], i[2], i[4], tuple(c[2] for c in conn.execute(f"PRAGMA index_info({i[1]})")))
                for i in conn.execute(f"PRAGMA index_list({table})")
            )
            foreign = sorted((f[2], f[3], f[4], f[6]) for f in conn.execute(f"PRAGMA foreign_key_list({table})"))
            layout[table] = (columns, indexes, foreign)
        return layout


def test_version_1_database_migrates_forward_without_losing_rows(tmp_path: Path):
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.executescript(VERSION_1_SCHEMA)

    with open_store(old) as store:
        detail = store.get_run(7)
        assert detail.summary.name == "old run" and detail.summary.fusion == "add"
        assert detail.summary.labels == () and detail.summary.note is None  # version 4's, empty
        store.set_labels(7, ["legacy"])
        store.set_note(7, "from 0.0.9")
        assert store.list_runs(label="legacy")[0].note == "from 0.0.9"
        assert detail.summary.deleted is False and detail.pid is None
        assert detail.test_metrics == {"test/NDCG@10": 0.15}
        assert [p.value for p in store.metric_history(7, "valid/NDCG@10")] == [0.1, 0.2]
        assert detail.tags == {"note": "legacy"} and detail.artifacts[0].path == "old.pt"
        assert [r.id for r in store.list_runs()] == [7]
        assert store.mark_orphans() == []  # no pid recorded: never guessed to be an orphan
        new_run = make_run(store)
        assert new_run > 7 and store.last_change() > 0

    assert raw(old, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    with open_store(tmp_path / "fresh.db"):
        pass
    assert schema_of(old) == schema_of(tmp_path / "fresh.db")


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path):
    db = tmp_path / "runs.db"
    with open_store(db) as store:
        make_run(store)
    raw(db, f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    with pytest.raises(SchemaTooNewError) as caught:
        open_store(db)
    message = str(caught.value)
    assert str(db) in message and str(SCHEMA_VERSION + 3) in message and "\n" not in message
    assert raw(db, "SELECT COUNT(*) FROM runs")[0][0] == 1


def test_corrupt_file_is_refused_and_left_untouched(tmp_path: Path):
    db = tmp_path / "runs.db"
    content = b"these are not the bytes of an SQLite database\n" * 200
    db.write_bytes(content)
    with pytest.raises(StoreError) as caught:
        open_store(db)
    message = str(caught.value)
    assert message.startswith(str(db)) and "\n" not in message
    assert db.read_bytes() == content


def test_another_programs_sqlite_file_is_refused(tmp_path: Path):
    db = tmp_path / "notes.db"
    raw(db, "CREATE TABLE notes (body TEXT)")
    with pytest.raises(StoreError, match="not a kirec runs database"):
        open_store(db)
    assert [r[0] for r in raw(db, "SELECT name FROM sqlite_master WHERE type='table'")] == ["notes"]


# -- the event recorder --------------------------------------------------------------------------------------


def test_store_recorder_turns_events_into_rows(store: RunStore):
    run_id = make_run(store)
    other_run = make_run(store, "other")
    record = StoreRecorder(store, run_id)
    for event_ in [
        RunStarted(run_id=run_id, name="run", device="cpu"),
        Status("loading data"),
        EpochStarted(epoch=1, steps=10),
        StepLoss(epoch=1, step=1, steps=10, loss=3.0),
        EpochEnd(
            epoch=1, train_loss=2.5, valid={"NDCG@10": 0.1, "HR@10": 0.2}, train_seconds=3, eval_seconds=1, is_best=True
        ),
        DeviceStats(device="cpu", utilization=50.0, memory_used_mb=None, memory_total_mb=None),
        EpochEnd(
            epoch=2,
            train_loss=2.0,
            valid={"NDCG@10": 0.15, "HR@10": 0.25},
            train_seconds=1,
            eval_seconds=1,
            is_best=True,
        ),
        RunFinished(run_id=other_run, status="FAILED", error="not ours"),
        RunFinished(
            run_id=run_id,
            status="FINISHED",
            valid={"NDCG@10": 0.15},
            test={"NDCG@10": 0.12, "HR@10": 0.3},
            best_epoch=2,
        ),
    ]:
        record(event_)

    assert [(p.step, p.value) for p in store.metric_history(run_id, "train/loss")] == [(1, 2.5), (2, 2.0)]
    assert [(p.step, p.value) for p in store.metric_history(run_id, "valid/NDCG@10")] == [(1, 0.1), (2, 0.15)]
    assert [(p.step, p.value) for p in store.metric_history(run_id, "valid/HR@10")] == [(1, 0.2), (2, 0.25)]
    assert [(p.step, p.value) for p in store.metric_history(run_id, EPOCH_SECONDS)] == [(1, 4.0), (2, 2.0)]
    detail = store.get_run(run_id)
    assert detail.valid_metrics == {"valid/NDCG@10": 0.15}
    assert detail.test_metrics == {"test/NDCG@10": 0.12, "test/HR@10": 0.3}
    assert detail.summary.status is RunStatus.FINISHED and detail.tags == {"best_epoch": "2"}
    assert raw(store.path, "SELECT COUNT(*) FROM metrics WHERE run_id = ?", run_id)[0][0] == 8 + 3
    assert store.get_run(other_run).summary.status is RunStatus.RUNNING  # its RunFinished went to another sink


def test_store_recorder_records_a_failure(store: RunStore):
    run_id = make_run(store)
    StoreRecorder(store, run_id)(RunFinished(run_id=None, status="FAILED", error="diverged"))
    detail = store.get_run(run_id)
    assert (detail.summary.status, detail.error, detail.test_metrics) == (RunStatus.FAILED, "diverged", {})


# -- refusing a file leaves it as it was ------------------------------------------------------------------------


def file_state(db: Path) -> tuple[str, list[str]]:
    """The file's sha256 and every file beside it (a -wal or -shm left behind would show here)."""
    import hashlib

    return hashlib.sha256(db.read_bytes()).hexdigest(), sorted(p.name for p in db.parent.iterdir())


def foreign_db(db: Path, user_version: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
        conn.execute(f"PRAGMA user_version = {user_version}")
    conn.close()


@pytest.mark.parametrize(
    "user_version, message",
    [
        (0, "no kirec schema version"),
        (2, "user_version is 2, but it lacks the kirec tables"),  # another program's own version number
        (SCHEMA_VERSION + 1, "newer than this kirec supports"),
    ],
)
def test_a_refused_file_is_left_byte_identical(tmp_path: Path, user_version: int, message: str):
    db = tmp_path / "other.db"
    foreign_db(db, user_version)
    before = file_state(db)
    with pytest.raises(StoreError, match=message) as caught:
        open_store(db)
    assert "\n" not in str(caught.value) and str(db) in str(caught.value)
    assert file_state(db) == before  # not switched to WAL, no -wal/-shm beside it
    assert db.read_bytes()[18:20] == b"\x01\x01"  # still a rollback-journal file


def test_a_newer_kirec_database_in_wal_mode_is_refused_untouched(tmp_path: Path):
    db = tmp_path / "runs.db"
    with open_store(db) as store:
        make_run(store)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = file_state(db)
    assert before[1] == ["runs.db"]  # the last connection closed cleanly
    with pytest.raises(SchemaTooNewError):
        open_store(db)
    assert file_state(db) == before


def test_artifacts_keep_their_hash_and_set_artifact_replaces_by_kind(store: RunStore):
    run_id = make_run(store)
    store.set_artifact(run_id, "checkpoint", "/a/run-1-x-e1.pt", "aa" * 32, tags={"best_epoch": "1"})
    store.set_artifact(run_id, "training_state", "/a/run-1-x-state-e1.pt", "bb" * 32)
    store.set_artifact(run_id, "checkpoint", "/a/run-1-x-e2.pt", "cc" * 32, tags={"best_epoch": "2"})
    detail = store.get_run(run_id)
    assert [(a.kind, a.path, a.sha256) for a in detail.artifacts] == [
        ("training_state", "/a/run-1-x-state-e1.pt", "bb" * 32),
        ("checkpoint", "/a/run-1-x-e2.pt", "cc" * 32),
    ]
    assert detail.tags["best_epoch"] == "2"
    store.drop_artifact(run_id, "training_state")
    assert [a.kind for a in store.get_run(run_id).artifacts] == ["checkpoint"]
    exported = json.loads(store.export_runs([run_id], "json"))
    assert exported[0]["artifacts"][0]["sha256"] == "cc" * 32


def test_reopen_run_makes_a_resumed_run_running_again_without_later_epochs(store: RunStore):
    run_id = make_run(store)
    for epoch in (1, 2, 3):
        store.log_metrics(run_id, {"valid/NDCG@10": epoch / 10}, step=epoch)
    store.finish_run(run_id, "INTERRUPTED", "killed")
    store.reopen_run(run_id, after_step=2)
    detail = store.get_run(run_id)
    assert (detail.summary.status, detail.error, detail.summary.ended_at) == (RunStatus.RUNNING, None, None)
    assert detail.pid == os.getpid()
    assert [p.step for p in store.metric_history(run_id, "valid/NDCG@10")] == [1, 2]


def test_open_without_create_refuses_a_missing_database(tmp_path: Path):
    from engine.store import DatabaseNotFoundError

    with pytest.raises(DatabaseNotFoundError, match="no runs database at"):
        open_store(tmp_path / "typo" / "x.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_a_second_store_in_a_process_keeps_the_first_ones_writes_visible_to_other_processes(tmp_path: Path):
    """A plain open()/close() of runs.db by a process that already has it open drops that process's POSIX locks:
    another process closing its last connection then deleted the -wal in use, and the first store's later writes
    went to a deleted file, lost (a bench's whole run once). Opening a second store must not do that."""
    db = tmp_path / "runs.db"
    reader = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute(sys.argv[2]).fetchone()[0]); c.close()"
    )

    def steps_seen_elsewhere() -> int:
        sql = "SELECT COUNT(*) FROM metrics"
        return int(
            subprocess.run(
                [sys.executable, "-c", reader, str(db), sql], capture_output=True, text=True, check=True
            ).stdout
        )

    with open_store(db) as first:
        run_id = make_run(first)
        first.log_metrics(run_id, {"train/loss": 1.0}, step=1)
        open_store(db).close()  # the bench opens one per phase; the TUI one per screen
        assert steps_seen_elsewhere() == 1  # another process reads, and closes its last connection
        assert Path(f"{db}-wal").exists()  # still the file the first store writes to
        first.log_metrics(run_id, {"train/loss": 0.5}, step=2)
        assert steps_seen_elsewhere() == 2
