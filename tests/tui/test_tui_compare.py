"""The Compare screen (with one run, the run's detail): it follows the store live, offers every logged curve,
measures runs against a baseline, keeps outputs apart from the configuration and fits small terminals."""

from __future__ import annotations


import pytest
from tests.tui_support import wait_for_workers, wait_until

from engine.events import EpochEnd, RunFinished
from engine.store import StoreRecorder, open_store
from kirec_tui.app import KirecApp
from kirec_tui.screens.compare import CompareScreen, FullValueModal
from kirec_tui.screens.runs import RunsScreen
from kirec_tui.widgets.chart import LineChart

pytestmark = pytest.mark.anyio
SIZE = (160, 45)
LONG_PROMPT = "attributes-with-a-very-long-name-for-a-prompt-version-" + "x" * 30


def start_run(store, name: str, lr: float = 0.001, **params) -> int:
    return store.create_run(
        name=name,
        config={"name": name},
        dataset="ml-latest-small",
        dataset_fingerprint="f" * 16,
        backbone="sasrec",
        method="kirec",
        device="cpu",
        params={"train.lr": lr, "model.backbone": "sasrec", "knowledge.fusion": "gate", **params},
        code_version="test",
    )


def epoch(store, run_id: int, n: int, ndcg: float, clock=None, seconds: float = 0.0) -> None:
    if clock is not None:
        clock.now += seconds
    valid = {"NDCG@10": ndcg, "HR@10": 2 * ndcg, "MRR@10": ndcg / 2, "NDCG@10/tail": ndcg / 3}
    train_seconds = seconds - 0.5 if clock is not None else 1.0  # the trainer's timing agrees with the clock
    StoreRecorder(store, run_id)(EpochEnd(n, 5.0 / n, valid, train_seconds, 0.5, True))


def finish(store, run_id: int, ndcg: float, users: float = 1234.0) -> None:
    test = {"NDCG@10": ndcg, "HR@10": 2 * ndcg, "users": users}
    StoreRecorder(store, run_id)(RunFinished(run_id, "FINISHED", valid={"NDCG@10": ndcg}, test=test, best_epoch=2))


def two_finished_runs(db) -> list[int]:
    with open_store(db) as store:
        ids = []
        for index, ndcg in enumerate((0.040, 0.050)):
            run_id = start_run(
                store,
                f"run-{index}",
                lr=0.001 * (index + 1),
                **{"knowledge.embed_seconds": 2.5 + index, "knowledge.extracted_from_cache": 40 + index},
                **{"knowledge.prompt": LONG_PROMPT},
            )
            epoch(store, run_id, 1, ndcg / 2)
            epoch(store, run_id, 2, ndcg)
            store.log_metrics(run_id, {"info/epochs_run": 2.0}, step=None)
            finish(store, run_id, ndcg)
            ids.append(run_id)
    return ids


def make_app(tmp_path, db, poll_seconds: float = 60.0) -> KirecApp:
    return KirecApp(db_path=db, cwd=tmp_path, env={}, poll_seconds=poll_seconds)


async def open_compare(pilot, run_ids) -> CompareScreen:
    await wait_for_workers(pilot.app)
    pilot.app.push_screen(CompareScreen(run_ids))
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.view is not None)
    await pilot.pause()
    return pilot.app.screen


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).content)


def cells(screen, table_id: str, row: str) -> list[str]:
    return [str(cell) for cell in screen.query_one(table_id).get_row(row)]


def headers(screen, table_id: str) -> list[str]:
    return [str(column.label) for column in screen.query_one(table_id).columns.values()]


async def test_a_running_runs_detail_follows_it_to_finished(tmp_path):
    db = tmp_path / "runs.db"
    with open_store(db) as writer:
        run_id = start_run(writer, "live-run")
        epoch(writer, run_id, 1, 0.02)
        app = make_app(tmp_path, db, poll_seconds=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_workers(app)
            assert isinstance(app.screen, RunsScreen)
            await pilot.press("enter")  # the run's detail
            await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.view is not None)
            screen = app.screen
            assert "RUNNING" in text_of(screen, "#compare-title")
            assert "test/NDCG@10" not in [str(k.value) for k in screen.query_one("#compare-metrics").rows]
            assert [len(s.values) for s in screen.query_one(LineChart).series] == [1]

            epoch(writer, run_id, 2, 0.03)  # the training goes on, then ends, through the store as the pipeline does
            finish(writer, run_id, 0.031)

            await wait_until(pilot, lambda: screen.view.runs[0].summary.status == "FINISHED")
            assert "FINISHED" in text_of(screen, "#compare-title")
            assert cells(screen, "#compare-metrics", "test/NDCG@10")[1] == "0.0310"
            assert [len(s.values) for s in screen.query_one(LineChart).series] == [2]
            assert cells(screen, "#compare-outputs", "run.best_epoch")[1] == "2"
            assert app.screen is screen  # never reopened


async def test_curves_offer_every_logged_series_and_epoch_time(tmp_path, fixed_clock):
    db = tmp_path / "runs.db"
    with open_store(db) as store:
        run_id = start_run(store, "timed")
        for n, seconds in ((1, 30.0), (2, 45.0), (3, 20.0)):
            epoch(store, run_id, n, 0.01 * n, clock=fixed_clock, seconds=seconds)
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, [run_id])
        chart = screen.query_one(LineChart)
        keys = screen.curve_keys()
        assert keys[:4] == ["valid/NDCG@10", "valid/HR@10", "train/loss", "time/epoch_seconds"]
        assert set(keys) == {*keys[:4], "valid/MRR@10", "valid/NDCG@10/tail"}
        seen = []
        for _ in keys:  # m cycles through every curve
            seen.append(chart.title.split()[0])
            await pilot.press("m")
        assert seen == keys and chart.title.startswith("valid/NDCG@10")
        await pilot.press("m", "m", "m")
        assert chart.title.startswith("time/epoch_seconds")
        assert chart.series[0].values == [30.0, 45.0, 20.0]

        # the Select picks any curve directly, by keys
        screen.query_one("#compare-curve").focus()
        await pilot.press("enter")
        position = keys.index("time/epoch_seconds")
        await pilot.press(*["down"] * (keys.index("valid/NDCG@10/tail") - position), "enter")
        await pilot.pause()
        assert screen.curve_key == "valid/NDCG@10/tail"
        assert chart.title.startswith("valid/NDCG@10/tail")
        assert chart.series[0].values == pytest.approx([0.01 / 3, 0.02 / 3, 0.03 / 3])


async def test_metrics_are_measured_against_a_baseline_the_user_moves(tmp_path):
    db = tmp_path / "runs.db"
    first, second = two_finished_runs(db)
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, [first, second])
        assert headers(screen, "#compare-metrics") == [
            "metric",
            f"#{first} base",
            f"#{second}",
            f"Δ#{second}",
            f"×#{second}",
        ]
        assert f"baseline #{first}" in text_of(screen, "#metrics-title")
        row = cells(screen, "#compare-metrics", "test/NDCG@10")
        assert row[1:] == ["0.0400", "0.0500 ★", "+0.0100", "×1.250"]
        await pilot.press("b")  # the other run becomes the baseline
        assert f"baseline #{second}" in text_of(screen, "#metrics-title")
        assert headers(screen, "#compare-metrics") == [
            "metric",
            f"#{first}",
            f"Δ#{first}",
            f"×#{first}",
            f"#{second} base",
        ]
        row = cells(screen, "#compare-metrics", "test/NDCG@10")
        assert row[1:] == ["0.0400", "-0.0100", "×0.800", "0.0500 ★"]


async def test_outputs_stay_out_of_the_configuration(tmp_path):
    db = tmp_path / "runs.db"
    first, second = two_finished_runs(db)
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, [first, second])
        params = screen.query_one("#compare-params")
        assert {str(k.value) for k in params.rows} == {"train.lr"}  # the only setting that differs
        await pilot.press("a")  # every param: still no output among them
        shown = {str(k.value) for k in params.rows}
        assert "knowledge.fusion" in shown and not shown & {"knowledge.embed_seconds", "knowledge.extracted_from_cache"}
        outputs = {str(k.value) for k in screen.query_one("#compare-outputs").rows}
        assert {"knowledge.embed_seconds", "knowledge.extracted_from_cache", "info/epochs_run"} <= outputs
        assert cells(screen, "#compare-outputs", "knowledge.embed_seconds")[1:] == ["2.5 s", "3.5 s"]


async def test_the_researchers_tags_and_note_lead_the_outputs(tmp_path):
    db = tmp_path / "runs.db"
    first, second = two_finished_runs(db)
    note = "why: does the [bold] lr matter? " + "y" * 40  # brackets are text, and longer than a cell
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, [first, second])
        outputs = [str(k.value) for k in screen.query_one("#compare-outputs").rows]
        assert "tags" not in outputs and "note" not in outputs  # no run has either: no empty rows
        with open_store(db) as store:
            store.set_labels(second, ["baseline", "lr-probe"])
            store.set_note(first, note)
        screen._load()
        await wait_until(pilot, lambda: "note" in [str(k.value) for k in screen.query_one("#compare-outputs").rows])
        outputs = [str(k.value) for k in screen.query_one("#compare-outputs").rows]
        assert outputs[:2] == ["tags", "note"]
        assert cells(screen, "#compare-outputs", "tags")[1:] == ["", "baseline lr-probe"]
        shown = cells(screen, "#compare-outputs", "note")
        assert shown[1].startswith("why: does the [bold]") and shown[1].endswith("…") and shown[2] == ""
        table = screen.query_one("#compare-outputs")
        table.focus()
        table.move_cursor(row=table.get_row_index("note"))
        await pilot.press("enter")
        assert isinstance(app.screen, FullValueModal)
        assert note in " ".join(str(s.content) for s in app.screen.query(".full-value-line"))


async def test_counts_print_as_integers_and_long_values_open_whole(tmp_path):
    db = tmp_path / "runs.db"
    first, second = two_finished_runs(db)
    app = make_app(tmp_path, db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, [first])  # the detail view shows every param
        assert cells(screen, "#compare-metrics", "test/users")[1] == "1234"
        assert cells(screen, "#compare-outputs", "info/epochs_run")[1] == "2"
        assert cells(screen, "#compare-outputs", "knowledge.extracted_from_cache")[1] == "40"
        params = screen.query_one("#compare-params")
        cut = cells(screen, "#compare-params", "knowledge.prompt")[1]
        assert cut.endswith("…") and len(cut) < len(LONG_PROMPT)
        params.focus()
        params.move_cursor(row=params.get_row_index("knowledge.prompt"))
        await pilot.press("enter")
        assert isinstance(app.screen, FullValueModal)
        assert LONG_PROMPT in " ".join(str(s.content) for s in app.screen.query(".full-value-line"))
        await pilot.press("escape")
        assert app.screen is screen


async def test_a_small_terminal_shows_one_half_at_a_time(tmp_path):
    db = tmp_path / "runs.db"
    first, second = two_finished_runs(db)
    app = make_app(tmp_path, db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(pilot, [first, second])
        left, right = screen.query_one("#compare-left"), screen.query_one("#compare-right")
        assert right.display and not left.display
        assert right.size.width >= 76  # the whole width, not half of it
        await pilot.press("v")
        await pilot.pause()
        assert left.display and not right.display and left.size.width >= 76
        assert screen.focused is screen.query_one("#compare-params")
        await pilot.press("v")
        await pilot.pause()
        assert right.display and not left.display
    for size, runs in (((160, 45), [first, second]), ((100, 30), [first])):  # wide enough: both halves at once
        app = make_app(tmp_path, db)
        async with app.run_test(size=size) as pilot:
            screen = await open_compare(pilot, runs)
            assert screen.query_one("#compare-left").display and screen.query_one("#compare-right").display
            assert not screen.check_action("switch_half", ())  # and no v key in the footer


async def test_the_palette_offers_the_screens_actions(tmp_path):
    db = tmp_path / "runs.db"
    first, second = two_finished_runs(db)
    app = make_app(tmp_path, db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_compare(pilot, [first, second])
        commands = {command.title: command for command in screen.palette_commands()}
        assert {"Compare: next curve", "Compare: next baseline", "Compare: full value"} <= set(commands)
        await pilot.press("v")  # the configuration half: choosing a curve brings the curves back
        commands["Compare: choose a curve"].callback()
        await pilot.pause()
        assert not screen.has_class("-setup") and screen.query_one("#compare-curve").expanded
