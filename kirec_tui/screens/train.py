"""The Train screen: a form that builds a RunConfig, then the live run in a thread worker.

`run_experiment` blocks, so it runs in a thread; its events reach the UI as `EngineEvent` messages
(`post_message` is thread-safe and does not wait, so a busy UI never slows training down). Cancelling
sets a threading.Event that the engine's `should_stop` reads: the run then ends INTERRUPTED.
"""

from __future__ import annotations

import threading
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Label, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from kirec_tui.widgets.chart import LineChart
from kirec_tui.widgets.train_form import FormError, TrainForm


class EngineEvent(Message):
    """One engine event (engine.events.*), forwarded from the training thread."""

    def __init__(self, event: object) -> None:
        super().__init__()
        self.event = event


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value:.0f} MiB"


class StartButton(Button):
    """The Start button, whose Enter the footer shows: Enter on it starts the run."""

    BINDINGS = [Binding("enter", "press", "Start run")]


class TrainScreen(Screen):
    # Arriving, the form itself has the focus (not a field, which would take the digit that switches screens):
    # Tab goes into the first field, the arrows scroll the form.
    AUTO_FOCUS = "#train-form"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS = [
        Binding("ctrl+r", "start", "Start run"),
        # Escape leaves a form field, so that the digit keys switch screens again.
        Binding("escape", "leave_field", "Leave field", show=False),
        # priority: the form's Inputs bind ctrl+x to "cut", and cancelling must work wherever focus is.
        Binding("ctrl+x", "cancel", "Cancel run", priority=True),
        Binding("ctrl+l", "clear_log", "Clear log", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self.worker: Worker | None = None
        self.run_id: int | None = None
        self.final_status: str | None = None
        self.result = None
        self.events_seen = 0
        self._epochs = 1
        self._steps = 1
        self._started = 0.0

    def compose(self) -> ComposeResult:
        from engine.config import flatten_dotted, load_config
        from engine.services.datasets import dataset_names

        defaults = flatten_dotted(load_config(env=self.app.env).to_dict())
        yield Header()
        with Horizontal(id="train-body"):
            with Vertical(id="train-left"):
                yield TrainForm(defaults, dataset_names(), id="train-form")
                yield Label("", id="form-error")
                yield StartButton("Start (Ctrl+R)", id="start", variant="success")
            with Vertical(id="train-right"):
                yield Label("idle: fill the form and press Ctrl+R", id="run-state")
                yield ProgressBar(total=1, id="progress", show_eta=True)  # a known total: idle is a still bar
                with Horizontal(id="charts"):
                    yield LineChart("loss per step", id="loss-chart")
                    yield LineChart("valid NDCG@10", id="valid-chart")
                yield Static("device: —", id="device-panel")
                yield RichLog(id="train-log", wrap=True, markup=True, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Train"

    def on_unmount(self) -> None:
        # Thread workers run in asyncio's default executor, which the interpreter joins at exit: without
        # this, quitting mid-run would wait for the whole run. The run ends INTERRUPTED at its next step.
        self._stop.set()

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def busy_work(self) -> str | None:
        """The app asks before quitting while this is not None (kirec_tui.app.HoldsWork)."""
        if not self.running:
            return None
        return f"run {self.run_id} is training" if self.run_id is not None else "a run is starting"

    # -- starting and cancelling ---------------------------------------------------------------------------

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        from engine.config import ConfigError, load_config

        if self.running:
            self.notify("a run is already in progress (Ctrl+X cancels it)", severity="warning")
            return
        error = self.query_one("#form-error", Label)
        try:
            flags = self.query_one(TrainForm).flags()
            flags.update(
                {
                    "db": str(self.app.db_path),
                    "data.data_root": self.app.data_root,
                    "workspace": str(self.app.workspace.root),
                }
            )
            cfg = load_config(env=self.app.env, flags=flags)
        except (ConfigError, FormError) as exc:
            error.update(f"[red]{exc}[/red]")
            return
        error.update("")
        self._reset(cfg.train.epochs)
        self._stop = threading.Event()
        self.worker = self._train(cfg)

    def _reset(self, epochs: int) -> None:
        self.run_id, self.final_status, self.result, self.events_seen = None, None, None, 0
        self._epochs, self._steps, self._started = max(1, epochs), 1, time.monotonic()
        self.query_one("#loss-chart", LineChart).clear()
        self.query_one("#valid-chart", LineChart).clear()
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.query_one("#run-state", Label).update("starting…")

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train(self, cfg):
        from engine.services import experiments

        return experiments.run(
            cfg, on_event=lambda e: self.post_message(EngineEvent(e)), should_stop=self._stop.is_set, cwd=self.app.cwd
        )

    def action_cancel(self) -> None:
        if not self.running:
            self.notify("no run in progress", severity="warning")
            return
        self._stop.set()
        self.query_one("#run-state", Label).update("cancelling after the current step…")

    def action_leave_field(self) -> None:
        self.query_one(TrainForm).focus()

    def action_clear_log(self) -> None:
        self.query_one(RichLog).clear()

    # -- engine events -------------------------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        from engine.events import DeviceStats, EpochEnd, EpochStarted, RunFinished, RunStarted, StepLoss
        from kirec_tui.event_text import event_line

        event = message.event
        self.events_seen += 1
        line = event_line(event)
        if line is not None:
            self.query_one(RichLog).write(line)
        if isinstance(event, StepLoss):
            self.query_one("#loss-chart", LineChart).append("loss", event.loss)
            self.query_one(ProgressBar).update(progress=(event.epoch - 1) * event.steps + event.step)
        elif isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.query_one("#run-state", Label).update(f"run {event.run_id} {event.name}: training on {event.device}")
        elif isinstance(event, EpochStarted):
            self._steps = max(1, event.steps)
            self.query_one(ProgressBar).update(
                total=self._epochs * self._steps, progress=(event.epoch - 1) * self._steps
            )
            self.query_one("#run-state", Label).update(f"run {self.run_id}: epoch {event.epoch}/{self._epochs}")
        elif isinstance(event, EpochEnd) and "NDCG@10" in event.valid:  # absent: not validated (eval.every)
            self.query_one("#valid-chart", LineChart).append("NDCG@10", event.valid["NDCG@10"])
        elif isinstance(event, DeviceStats):
            util = "?" if event.utilization is None else f"{event.utilization:.0f}%"
            self.query_one("#device-panel", Static).update(
                f"device {event.device}   utilisation {util}   memory {_mb(event.memory_used_mb)} / {_mb(event.memory_total_mb)}"
            )
        elif isinstance(event, RunFinished):
            self.final_status = event.status
            self.query_one("#run-state", Label).update(f"run {event.run_id} {event.status}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.worker:
            return
        if event.state == WorkerState.SUCCESS:
            self.result = event.worker.result
        elif event.state == WorkerState.ERROR:
            error = event.worker.error
            self.query_one(RichLog).write(f"[red]run failed: {type(error).__name__}: {error}[/red]")
            self.query_one("#run-state", Label).update(f"[red]failed: {error}[/red]")

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Train: start run", "Start a run with the form's settings", self.action_start)
        yield SystemCommand("Train: cancel run", "Stop the run in progress (INTERRUPTED)", self.action_cancel)
