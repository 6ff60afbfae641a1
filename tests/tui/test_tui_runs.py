"""The Runs screen and its compare, delete and export workflows, driven through Pilot on a fixed runs.db."""

from __future__ import annotations

import csv
import sqlite3
import time

import pytest
from tests.tui_support import wait_for_workers

from engine.store import open_store
from kirec_tui.app import KirecApp
from kirec_tui.screens.compare import CompareScreen
from kirec_tui.screens.help import HelpScreen
from kirec_tui.screens.modals import ConfirmModal, TextPromptModal
from kirec_tui.screens.runs import RunsScreen
from kirec_tui.widgets.chart import LineChart
from kirec_tui.widgets.runs_table import RunsTable

pytestmark = pytest.mark.anyio
SIZE = (160, 45)


async def settle(pilot) -> None:
    """Let workers finish and the messages they posted be handled."""
    await wait_for_workers(pilot.app)
    await pilot.pause()


async def wait_until(pilot, condition, timeout: float = 10.0) -> None:
    """Wait on a condition that another timer makes true (the change poll), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)
        await wait_for_workers(pilot.app)


def listed_names(app) -> list[str]:
    return [r.name for r in app.screen.runs]


def make_app(tmp_path, db, poll_seconds: float = 60.0) -> KirecApp:
    return KirecApp(db_path=db, cwd=tmp_path, env={}, poll_seconds=poll_seconds)


async def test_lists_every_run_newest_first_and_sorts_by_key(tmp_path, runs_db):
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
        table = app.screen.query_one(RunsTable)
        assert table.row_count == len(ids)
        assert [r.id for r in app.screen.runs] == sorted(ids, reverse=True)  # started_at descending
        await pilot.press("o")  # ascending
        await settle(pilot)
        assert [r.id for r in app.screen.runs] == sorted(ids)
        await pilot.press("s")  # next column after "started": duration
        await settle(pilot)
        assert app.screen.sort_key == "duration"
        durations = [r.duration_seconds for r in app.screen.runs]
        assert durations == sorted(durations)
        app.screen.sort_by("ndcg10", True)
        await settle(pilot)
        assert listed_names(app)[:3] == ["id-sasrec-ml", "kirec-gate-beauty", "id-gru-ml"]
        app.screen.sort_by("fusion", False)  # sorted in the UI: the store cannot order by a param
        await settle(pilot)
        assert listed_names(app)[:2] == ["kirec-add-ml", "kirec-gate-beauty"]


async def test_header_click_sorts_by_that_column(tmp_path, runs_db):
    db, _ = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        x = sum(col.get_render_width(table) for col in list(table.columns.values())[:2])  # mark + id: "name" next
        await pilot.click(RunsTable, offset=(x + 2, 0))
        await settle(pilot)
        assert app.screen.sort_key == "name"
        names = listed_names(app)
        assert names == sorted(names)


async def test_filters_by_text_status_and_dataset(tmp_path, runs_db):
    db, _ = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"gru", "enter")
        await settle(pilot)
        assert listed_names(app) == ["id-gru-ml"]
        await pilot.press("slash", "ctrl+u", "enter")  # clear the text filter
        await settle(pilot)
        app.screen.query_one("#filter-status").value = "FAILED"
        await settle(pilot)
        assert listed_names(app) == ["bert-fail"]
        app.screen.query_one("#filter-status").clear()
        app.screen.query_one("#filter-dataset").value = "amazon-beauty"
        await settle(pilot)
        assert sorted(listed_names(app)) == ["bert-fail", "kirec-gate-beauty"]


async def test_new_runs_from_another_writer_appear_on_their_own(tmp_path, runs_db):
    db, _ = runs_db
    app = make_app(tmp_path, db, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = len(app.screen.runs)
        with open_store(db) as writer:  # a second connection, as a `kirec run` in another terminal would open
            writer.create_run(
                name="from-elsewhere",
                config={},
                dataset="ml-latest-small",
                dataset_fingerprint="x",
                backbone="sasrec",
                method="id",
                device="cpu",
                params={},
                code_version="test",
            )
        await wait_until(pilot, lambda: len(app.screen.runs) == before + 1)
        assert "from-elsewhere" in listed_names(app)


async def test_compare_selected_runs_shows_differences_and_overlaid_curves(tmp_path, runs_db):
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "space", "c")  # the two newest runs
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.run_ids == sorted(ids[-2:])
        params = screen.query_one("#compare-params")
        differing = {str(k.value) for k in params.rows}
        assert "model.backbone" in differing and "train.seed" not in differing
        await pilot.press("a")
        assert params.row_count > len(differing)
        chart = screen.query_one(LineChart)
        assert [len(s.values) for s in chart.series] == [1, 2]  # bert-fail: 1 epoch, kirec-add-ml: 2
        await pilot.press("m")
        assert chart.title.startswith("valid/HR@10")
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_compare_needs_two_runs(tmp_path, runs_db):
    db, _ = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "c")
        assert isinstance(app.screen, RunsScreen)


async def test_enter_opens_one_runs_details(tmp_path, runs_db):
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen) and app.screen.run_ids == [max(ids)]
        assert app.screen.show_all_params


async def test_soft_delete_asks_first_and_hides_the_run(tmp_path, runs_db):
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        newest = max(ids)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await settle(pilot)
        assert newest in {r.id for r in app.screen.runs}
        await pilot.press("d", "y")
        await settle(pilot)
        assert newest not in {r.id for r in app.screen.runs}
    with open_store(db) as store:
        assert store.get_run(newest).summary.deleted


async def test_export_writes_the_selected_runs_as_csv(tmp_path, runs_db):
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "space", "e")
        assert isinstance(app.screen, TextPromptModal)
        app.screen.query_one("#answer").value = "out/two.csv"
        await pilot.press("enter")
        await settle(pilot)
    with (tmp_path / "out" / "two.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["id"]) for r in rows) == sorted(ids)[-2:]
    assert {r["name"] for r in rows} == {"bert-fail", "kirec-add-ml"}


async def test_help_lists_bindings_of_every_screen(tmp_path, runs_db):
    db, _ = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#bindings")
        rows = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        assert ("Train", "Ctrl+R", "Start run") in rows  # keys as people write them
        assert ("Runs", "Space", "Select") in rows
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_a_long_listing_is_shown_a_window_at_a_time(tmp_path, runs_db, monkeypatch):
    from kirec_tui.screens import runs as runs_module

    monkeypatch.setattr(runs_module, "PAGE_ROWS", 2)
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        assert len(app.screen.runs) == len(ids) and table.row_count == 2
        assert "showing the first 2" in str(app.screen.query_one("#runs-info").render())
        await pilot.press("m")
        assert table.row_count == 4
        await pilot.press("m", "m")
        assert table.row_count == len(ids)
        assert "showing" not in str(app.screen.query_one("#runs-info").render())


async def test_r_resumes_an_interrupted_run_in_the_same_row(tmp_path, tiny_dataset):
    import torch

    from engine.config import load_config
    from engine.events import EpochEnd
    from engine.pipeline import run_experiment

    torch.set_num_threads(1)
    db = tmp_path / "runs.db"
    flags = {
        "knowledge.method": "id",
        "model.hidden_size": "16",
        "model.max_len": "10",
        "train.batch_size": "32",
        "train.device": "cpu",
        "train.num_threads": "1",
        "train.epochs": "3",
        "train.patience": "100",
        "data.dataset": str(tiny_dataset),
        "db": str(db),
    }
    finished = run_experiment(load_config(env={}, flags=flags), cwd=tmp_path)
    epochs: list[int] = []
    cut = run_experiment(
        load_config(env={}, flags=flags),
        cwd=tmp_path,
        on_event=lambda e: epochs.append(e.epoch) if isinstance(e, EpochEnd) else None,
        should_stop=lambda: len(epochs) >= 1,
    )
    assert cut.status == "INTERRUPTED"
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        assert table.current_run_id() == cut.run_id  # newest first
        table.move_cursor(row=1)
        await pilot.press("r")  # a FINISHED run: nothing starts
        assert app.screen.resume_worker is None
        table.move_cursor(row=0)
        await pilot.press("r")
        assert app.screen.resume_worker is not None
        await settle(pilot)
        await wait_until(pilot, lambda: {r.id: r.status for r in app.screen.runs}[cut.run_id] == "FINISHED")
        assert app.screen.resume_worker.result.run_id == cut.run_id
        assert len(app.screen.runs) == 2  # the same row, not a new run
    with open_store(db) as store:
        resumed = store.get_run(cut.run_id)
    assert resumed.test_metrics == pytest.approx({f"test/{k}": v for k, v in finished.test.items()}, abs=1e-6)


async def test_export_never_replaces_the_database_and_asks_before_replacing_a_file(tmp_path, runs_db):
    db, _ = runs_db
    before = db.read_bytes()
    (tmp_path / "old.csv").write_text("keep\n")
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        app.screen.query_one("#answer").value = "runs.db"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)  # refused with a notification, nothing to confirm
        await pilot.press("e")
        app.screen.query_one("#answer").value = "old.csv"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await settle(pilot)
        assert (tmp_path / "old.csv").read_text() == "keep\n"
        await pilot.press("e")
        app.screen.query_one("#answer").value = "old.csv"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    assert db.read_bytes() == before
    assert (tmp_path / "old.csv").read_text().startswith("id,name,status")


async def test_a_run_whose_writer_is_killed_turns_interrupted_while_listed(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        db = tmp_path / "runs.db"
        with open_store(db) as store:
            run_id = store.create_run("live", {}, "d", "fp", "sasrec", "id", "cpu", params={}, code_version="test")
        with sqlite3.connect(db) as con:  # as if that process wrote the run
            con.execute("UPDATE runs SET pid = ? WHERE id = ?", (writer.pid, run_id))
        con.close()
        app = make_app(tmp_path, db, poll_seconds=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert [r.status for r in app.screen.runs] == ["RUNNING"]
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=30)
            await wait_until(pilot, lambda: [r.status for r in app.screen.runs] == ["INTERRUPTED"])
    finally:
        writer.kill()
        writer.wait()


def test_the_fixture_db_holds_the_specified_runs(runs_db):
    """The builder gives what the TUI tests and snapshots assume."""
    import math

    from tests.tui_support import BASE_TIME

    path, ids = runs_db
    with open_store(path) as store:
        runs = {r.id: r for r in store.list_runs()}
    assert sorted(runs) == sorted(ids)
    first = runs[ids[0]]
    assert first.test_metrics["test/NDCG@10"] == pytest.approx(0.0441)
    assert first.started_at.timestamp() == BASE_TIME
    assert math.isclose(first.duration_seconds, 4 * 60 + 30)
