"""The Runs screen and its compare, delete and export workflows, driven through Pilot on a fixed runs.db."""

from __future__ import annotations

import csv
import sqlite3

import pytest
from tests.tui_support import wait_for_workers, wait_until

from engine.store import open_store
from kirec_tui.app import KirecApp
from kirec_tui.screens.compare import CompareScreen
from kirec_tui.screens.help import HelpScreen
from kirec_tui.screens.modals import ConfirmModal, TextPromptModal
from kirec_tui.screens.runs import RunsScreen
from kirec_tui.screens.runs_dialogs import ColumnChooser, ExportDialog, SortPicker
from kirec_tui.widgets.chart import LineChart
from kirec_tui.widgets.runs_table import RunsTable

pytestmark = pytest.mark.anyio
SIZE = (160, 45)


async def settle(pilot) -> None:
    """Let workers finish and the messages they posted be handled."""
    await wait_for_workers(pilot.app)
    await pilot.pause()


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
        app.screen.sort_by("duration", False)
        await settle(pilot)
        durations = [r.duration_seconds for r in app.screen.runs]
        assert durations == sorted(durations)
        app.screen.sort_by("test/NDCG@10", True)
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
        assert isinstance(app.screen, ExportDialog)
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
        assert app.screen.busy_work() is None  # finished: Ctrl+Q no longer asks for it
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


# -- columns, sorting, tags and notes, filtered export, deleted runs (issue 11) ------------------------------------


def header_labels(app) -> list[str]:
    table = app.screen.query_one(RunsTable)
    return [str(c.label) for c in table.columns.values()]


def row_of(app, run_id: int) -> dict[str, str]:
    """The shown cells of a run's row, by column key."""
    table = app.screen.query_one(RunsTable)
    keys = [str(k.value) for k in table.columns]
    return dict(zip(keys, (str(c) for c in table.get_row(str(run_id)))))


def with_more_metrics(db, run_id: int) -> None:
    with open_store(db) as store:
        store.log_metrics(run_id, {"test/MRR@10": 0.0301, "test/HR@20": 0.12, "test/NDCG@10/tail": 0.0123}, step=None)


async def toggle_columns(pilot, *keys: str) -> None:
    """Open the column chooser, toggle `keys` and close it."""
    await pilot.press("v")
    chooser = pilot.app.screen
    assert isinstance(chooser, ColumnChooser)
    options = chooser.query_one("#columns")
    values = [options.get_option_at_index(i).value for i in range(options.option_count)]
    for key in keys:
        options.highlighted = values.index(key)
        await pilot.press("space")
    await pilot.press("escape")
    await settle(pilot)


async def test_the_column_chooser_shows_logged_metrics_and_hides_columns_for_the_session(tmp_path, runs_db):
    db, ids = runs_db
    with_more_metrics(db, ids[0])
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "MRR@10" not in header_labels(app) and "dataset" in header_labels(app)
        await toggle_columns(pilot, "test/MRR@10", "test/NDCG@10/tail", "dataset")
        labels = header_labels(app)
        assert "dataset" not in labels
        # the metrics stay together after the status, in metric order (overall before tail)
        assert labels[4:8] == ["HR@10", "NDCG@10", "MRR@10", "NDCG@10/tail"]
        assert row_of(app, ids[0])["test/MRR@10"] == "0.0301"
        assert row_of(app, ids[1])["test/MRR@10"] == "—"  # not logged by that run
        await pilot.press("2")  # another screen and back: the choice lasts the session
        await settle(pilot)
        await app.switch_mode("runs")  # (not by key: Train's name field may hold the focus, and the "1")
        await settle(pilot)
        assert header_labels(app) == labels


async def test_s_picks_any_shown_column_to_sort_by_and_the_header_shows_the_arrow(tmp_path, runs_db):
    db, ids = runs_db
    with_more_metrics(db, ids[1])  # id-gru-ml: the only run with an MRR@10
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await toggle_columns(pilot, "test/MRR@10")
        await pilot.press("s")
        picker = app.screen
        assert isinstance(picker, SortPicker)
        options = picker.query_one("#sort-columns")
        keys = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = keys.index("test/NDCG@10")
        await pilot.press("enter")
        await settle(pilot)
        assert (app.screen.sort_key, app.screen.descending) == ("test/NDCG@10", True)  # best first
        assert listed_names(app)[:3] == ["id-sasrec-ml", "kirec-gate-beauty", "id-gru-ml"]
        assert "NDCG@10 ▼" in header_labels(app)
        assert sum("▼" in label or "▲" in label for label in header_labels(app)) == 1
        assert "sorted by NDCG@10 ↓" in str(app.screen.query_one("#runs-info").render())
        await pilot.press("s", "enter")  # the sorted column again (it is highlighted): the other way round
        await settle(pilot)
        assert app.screen.descending is False and "NDCG@10 ▲" in header_labels(app)
        # a metric column added by the chooser sorts too, from its header
        table = app.screen.query_one(RunsTable)
        columns = list(table.columns.values())
        index = [str(c.key.value) for c in columns].index("test/MRR@10")
        x = sum(c.get_render_width(table) for c in columns[:index])
        await pilot.click(RunsTable, offset=(x + 2, 0))
        await settle(pilot)
        assert app.screen.sort_key == "test/MRR@10" and listed_names(app)[0] == "id-gru-ml"
        assert any(label.startswith("MRR@10 ▼") for label in header_labels(app))


async def test_fusion_shows_a_dash_for_a_method_that_fuses_nothing(tmp_path, runs_db):
    db, ids = runs_db
    with open_store(db) as store:  # an id run records the config's fusion, as the pipeline's params do
        plain = store.create_run(
            "id-with-config-fusion",
            {},
            "d",
            "fp",
            "sasrec",
            "id",
            "cpu",
            params={"knowledge.fusion": "gate"},
            code_version="test",
        )
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert row_of(app, plain)["fusion"] == "—"
        assert row_of(app, ids[2])["fusion"] == "gate"  # kirec-gate-beauty: kirec fuses


async def test_t_tags_a_run_the_filter_finds_it_and_n_writes_a_note(tmp_path, runs_db):
    db, ids = runs_db
    newest = max(ids)
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        assert isinstance(app.screen, TextPromptModal)
        await pilot.press(*"baseline, ablation", "enter")
        await settle(pilot)
        assert row_of(app, newest)["labels"] == "ablation baseline"
        await pilot.press("slash", *"baseline", "enter")
        await settle(pilot)
        assert [r.id for r in app.screen.runs] == [newest]
        await pilot.press("slash", "ctrl+u", "enter")
        await settle(pilot)
        await pilot.press("n", *"lr too high?", "enter")
        await settle(pilot)
        assert "note: lr too high?" in str(app.screen.query_one("#runs-info").render())
        await pilot.press("down")  # another run: its (empty) note
        assert "note:" not in str(app.screen.query_one("#runs-info").render())
        await pilot.press("up", "n", "ctrl+u", "enter")  # an empty note removes it
        await settle(pilot)
        await pilot.press("t", *"has space-less,ok bad/tag", "enter")  # valid: a tag may hold "/" and "-"
        await settle(pilot)
        # two runs selected: the tags typed are added, "-tag" removes one
        await pilot.press("space", "space", "t", *"sweep -ablation", "enter")
        await settle(pilot)
    with open_store(db) as store:
        assert store.get_run(newest).summary.note is None
        assert store.get_run(newest).summary.labels == ("bad/tag", "has", "ok", "space-less", "sweep")
        assert store.get_run(newest - 1).summary.labels == ("sweep",)


async def test_a_bad_tag_is_one_line_and_changes_nothing(tmp_path, runs_db):
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        too_long = "x" * 65
        await pilot.press("t", *too_long, "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
    with open_store(db) as store:
        assert store.get_run(max(ids)).summary.labels == ()


async def test_export_writes_only_the_filtered_runs_as_json_with_their_curves(tmp_path, runs_db):
    import json

    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"beauty", "enter")
        await settle(pilot)
        assert sorted(listed_names(app)) == ["bert-fail", "kirec-gate-beauty"]
        await pilot.press("e")
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        assert "the 2 runs listed" in str(dialog.query_one("Label").render())
        await pilot.press("shift+tab", "down", "space")  # the format: JSON; the file name follows it
        await settle(pilot)
        assert dialog.query_one("#answer").value == "kirec-runs.json"
        await pilot.press("tab", "enter")
        await settle(pilot)
        await pilot.press("e")
        app.screen.query_one("#answer").value = "beauty.csv"
        await pilot.press("enter")
        await settle(pilot)
    documents = json.loads((tmp_path / "kirec-runs.json").read_text())
    assert sorted(d["name"] for d in documents) == ["bert-fail", "kirec-gate-beauty"]
    gate = next(d for d in documents if d["name"] == "kirec-gate-beauty")
    assert [p["value"] for p in gate["curves"]["valid/NDCG@10"]] == [0.021, 0.03, 0.038, 0.042, 0.043]
    assert [p["step"] for p in gate["curves"]["train/loss"]] == [1, 2, 3, 4, 5]
    with (tmp_path / "beauty.csv").open(newline="") as fh:
        assert sorted(r["name"] for r in csv.DictReader(fh)) == ["bert-fail", "kirec-gate-beauty"]


async def test_deleted_runs_can_be_shown_marked_and_restored(tmp_path, runs_db):
    db, ids = runs_db
    newest = max(ids)
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d", "y")
        await settle(pilot)
        assert newest not in {r.id for r in app.screen.runs}
        await pilot.press("D")
        await settle(pilot)
        assert newest in {r.id for r in app.screen.runs}
        assert row_of(app, newest)["mark"] == "×" and row_of(app, newest - 1)["mark"] == " "
        assert "deleted runs shown" in str(app.screen.query_one("#runs-info").render())
        table = app.screen.query_one(RunsTable)
        table.move_cursor(row=table.get_row_index(str(newest)))
        await pilot.press("u")
        await settle(pilot)
        assert row_of(app, newest)["mark"] == " "
        await pilot.press("D")  # deleted runs hidden again: the restored one stays listed
        await settle(pilot)
        assert newest in {r.id for r in app.screen.runs}
    with open_store(db) as store:
        assert not store.get_run(newest).summary.deleted


async def test_the_footer_says_that_enter_opens_the_run(tmp_path, runs_db):
    from textual.widgets._footer import FooterKey

    db, _ = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        keys = {k.key: k.description for k in app.screen.query(FooterKey)}
        assert keys.get("enter") == "Open run"
        assert keys.get("v") == "Columns" and keys.get("s") == "Sort" and keys.get("t") == "Tags"


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_the_metrics_stay_on_screen_in_a_small_terminal(tmp_path, runs_db, size):
    db, _ = runs_db
    with open_store(db) as store:  # a long name must not push the metrics off the right edge
        store.create_run(
            "a-very-long-run-name-" * 4,
            {},
            "ml-latest-small",
            "fp",
            "sasrec",
            "id",
            "cpu",
            params={},
            code_version="test",
        )
    app = make_app(tmp_path, db)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        columns = list(table.columns.values())
        keys = [str(c.key.value) for c in columns]
        right_edge = sum(c.get_render_width(table) for c in columns[: keys.index("test/NDCG@10") + 1])
        assert right_edge <= table.scrollable_content_region.width
        filter_text = app.screen.query_one("#filter-text")
        assert filter_text.region.width >= 20  # room to type a filter beside the three selectors


async def test_the_palettes_json_export_starts_with_json_chosen(tmp_path, runs_db):
    db, ids = runs_db
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        commands["Runs: export JSON"]()
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ExportDialog) and dialog.fmt == "json"
        await pilot.press("enter")
        await settle(pilot)
    import json

    documents = json.loads((tmp_path / "kirec-runs.json").read_text())
    assert sorted(d["id"] for d in documents) == sorted(ids) and all("curves" in d for d in documents)
