"""The Train screen: a form → a real (tiny) run in a thread worker, live curves, cancel, and the run in Runs."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

from engine.store import open_store
from tests.tui_support import wait_until
from kirec_tui.app import KirecApp
from kirec_tui.screens.modals import ConfirmModal
from kirec_tui.screens.runs import RunsScreen
from kirec_tui.screens.train import TrainScreen
from kirec_tui.widgets.chart import LineChart

# Training workers keep running while these tests wait: waiting must not settle them.
wait_running = functools.partial(wait_until, settle_workers=False)

pytestmark = pytest.mark.anyio
SIZE = (160, 45)
# knowledge.method=id: the UI path is the same for every method, and LLM extraction would only slow the test.
SMALL = "model.hidden_size=16 model.num_layers=1 model.max_len=12 train.batch_size=32 eval.ks=10 knowledge.method=id"


async def open_train(pilot, dataset, epochs: int, extra: str = SMALL) -> TrainScreen:
    await pilot.press("2")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    form = screen.query_one("#train-form")
    form.set_value("dataset", str(dataset))
    form.set_value("epochs", str(epochs))
    form.set_value("device", "cpu")
    form.set_value("extra", extra)
    return screen


async def test_a_run_started_from_the_form_trains_reports_and_shows_in_runs(tmp_path, tiny_dataset):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={}, poll_seconds=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot, tiny_dataset, epochs=2)
        await pilot.press("ctrl+r")
        await screen.worker.wait()
        await pilot.pause()
        assert screen.final_status == "FINISHED", screen.worker.error
        assert screen.result.status == "FINISHED" and screen.result.run_id == screen.run_id
        loss = screen.query_one("#loss-chart", LineChart).series[0].values
        valid = screen.query_one("#valid-chart", LineChart).series[0].values
        assert len(valid) == 2 and len(loss) >= 2 and all(v > 0 for v in loss)
        bar = screen.query_one("#progress")
        assert bar.total and bar.progress == bar.total
        assert "utilisation" in str(screen.query_one("#device-panel").render())
        await pilot.press("escape", "1")  # leave the form field, then switch to Runs
        runs_screen = app.screen
        assert isinstance(runs_screen, RunsScreen)
        await wait_running(
            pilot, lambda: any(r.id == screen.run_id and r.status == "FINISHED" for r in runs_screen.runs)
        )
    with open_store(tmp_path / "runs.db") as store:
        run = store.get_run(screen.run_id)
        assert run.summary.status == "FINISHED" and "test/NDCG@10" in run.test_metrics
        assert run.params["train.epochs"] == "2" and run.params["model.hidden_size"] == "16"


async def test_keys_keep_working_while_training_and_cancel_interrupts(tmp_path, tiny_dataset):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={}, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot, tiny_dataset, epochs=500, extra=SMALL + " train.patience=1000")
        await pilot.press("ctrl+r")
        chart = screen.query_one("#loss-chart", LineChart)
        await wait_running(pilot, lambda: chart.series and len(chart.series[0].values) >= 3)
        await pilot.press("escape", "1")  # switch screens mid-run: the Runs screen shows the run as RUNNING
        steps_when_we_left = len(chart.series[0].values)
        runs_screen = app.screen
        assert isinstance(runs_screen, RunsScreen) and screen.running
        await wait_running(
            pilot, lambda: any(r.id == screen.run_id and r.status == "RUNNING" for r in runs_screen.runs)
        )
        # the hidden Train screen still takes the run's steps: its chart grows while Runs is shown
        await wait_running(pilot, lambda: len(chart.series[0].values) > steps_when_we_left)
        assert app.screen is runs_screen
        await pilot.press("2")
        assert app.screen is screen
        await pilot.press("ctrl+x")
        await screen.worker.wait()
        await pilot.pause()
        assert screen.final_status == "INTERRUPTED" and screen.result.status == "INTERRUPTED"
    with open_store(tmp_path / "runs.db") as store:
        assert store.get_run(screen.run_id).summary.status == "INTERRUPTED"


async def test_a_bad_form_value_is_reported_without_starting(tmp_path):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot, "anything", epochs=1, extra="train.epochs=many")
        await pilot.press("ctrl+r")
        assert screen.worker is None
        assert "train.epochs" in str(screen.query_one("#form-error").render())


async def test_environment_settings_fill_the_form_defaults(tmp_path):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={"KIREC_TRAIN__SEED": "7"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert app.screen.query_one("#form-seed").value == "7"


async def test_ctrl_q_mid_run_asks_no_keeps_the_run_yes_quits_and_interrupts_it(tmp_path, tiny_dataset):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot, tiny_dataset, epochs=500, extra=SMALL + " train.patience=1000")
        await pilot.press("ctrl+r")
        await wait_running(pilot, lambda: screen.run_id is not None)
        await pilot.press("escape", "1", "ctrl+q")  # asked from any screen: the run trains on the hidden Train screen
        await wait_running(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert isinstance(app.screen, ConfirmModal) and f"run {screen.run_id} is training" in app.screen.question
        chart = screen.query_one("#loss-chart", LineChart)
        await pilot.press("n")
        await wait_running(pilot, lambda: not isinstance(app.screen, ConfirmModal))
        assert isinstance(app.screen, RunsScreen) and app.return_code is None
        steps = len(chart.series[0].values) if chart.series else 0
        await wait_running(pilot, lambda: chart.series and len(chart.series[0].values) > steps)  # still training
        assert screen.running
        await pilot.press("ctrl+q")
        await wait_running(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_running(pilot, lambda: app.return_code is not None)
        assert app.return_code == 0
    # The training thread outlives the app's event loop; it must stop on its own within a step or two
    # (not after 500 epochs) and record the run INTERRUPTED.
    deadline = time.monotonic() + 60
    with open_store(tmp_path / "runs.db") as store:
        while store.get_run(screen.run_id).summary.status == "RUNNING":
            assert time.monotonic() < deadline, "the run kept training after the app quit"
            await asyncio.sleep(0.1)
        assert store.get_run(screen.run_id).summary.status == "INTERRUPTED"


async def test_enter_on_start_is_in_the_footer_and_starts(tmp_path):
    from textual.widgets._footer import FooterKey

    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot, "no-such-dataset", epochs=1, extra="train.epochs=many")
        screen.query_one("#start").focus()
        await pilot.pause()
        shown = {(k.key_display, k.description) for k in screen.query(FooterKey)}
        assert any(description == "Start run" and key in ("⏎", "enter", "Enter") for key, description in shown)
        await pilot.press("enter")  # starts: here the form's bad value says so, as Ctrl+R would
        assert "train.epochs" in str(screen.query_one("#form-error").render())
