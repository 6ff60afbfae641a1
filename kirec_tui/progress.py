"""Renders engine events on a terminal with Rich: epoch and batch bars with ETA, a line per epoch."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from engine.events import EpochEnd, EpochStarted, Event, RunStarted, StepLoss
from kirec_tui.event_text import event_line


class ConsoleProgress:
    """An event sink for the CLI. Use as a context manager so the live bars are torn down cleanly."""

    def __init__(self, console: Console, total_epochs: int):
        self.console = console
        self.total_epochs = total_epochs
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.epoch_task = None
        self.batch_task = None

    def __enter__(self) -> "ConsoleProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        line = event_line(event)
        if line is not None:
            self.console.print(line)
        if isinstance(event, RunStarted):  # a second run (the ID baseline after a KIRec run) gets fresh bars
            for task in (self.epoch_task, self.batch_task):
                if task is not None:
                    self.progress.remove_task(task)
            self.batch_task = None
            self.epoch_task = self.progress.add_task("epochs", total=self.total_epochs, info="")
        elif isinstance(event, EpochStarted):
            if self.batch_task is not None:
                self.progress.remove_task(self.batch_task)
            self.batch_task = self.progress.add_task(f"epoch {event.epoch}", total=event.steps, info="")
        elif isinstance(event, StepLoss) and self.batch_task is not None:
            self.progress.update(self.batch_task, completed=event.step, info=f"loss {event.loss:.4f}")
        elif isinstance(event, EpochEnd) and self.epoch_task is not None:
            if "NDCG@10" in event.valid:  # not validated this epoch (eval.every): the last figure stays
                self.progress.update(self.epoch_task, info=f"NDCG@10 {event.valid['NDCG@10']:.4f}")
            self.progress.update(self.epoch_task, completed=event.epoch)
