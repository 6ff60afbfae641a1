"""Persists engine progress events into the runs store, following the metric key convention of queries.py."""

from __future__ import annotations

from engine.events import EPOCH_SECONDS, EpochEnd, Event, RunFinished
from engine.store.queries import TEST_PREFIX, VALID_PREFIX, RunStore


class StoreRecorder:
    """An `engine.events.EventSink` that writes one run's epochs and final result to `store`.

    EpochEnd -> `train/loss`, `valid/<metric>` and `time/epoch_seconds` (training + validation, as the trainer
    timed them: a resumed run's first epoch does not count the time it stood still) at step = epoch.
    RunFinished -> final `valid/...` and `test/...` metrics (step None), a `best_epoch` tag when known, and the
    run's final status and error.
    Every other event is ignored, as is a RunFinished that names a different run.
    """

    def __init__(self, store: RunStore, run_id: int) -> None:
        self.store = store
        self.run_id = run_id

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochEnd):
            metrics = {
                "train/loss": event.train_loss,
                **_prefixed(VALID_PREFIX, event.valid),
                EPOCH_SECONDS: event.train_seconds + event.eval_seconds,
            }
            self.store.log_metrics(self.run_id, metrics, step=event.epoch)
        elif isinstance(event, RunFinished) and event.run_id in (None, self.run_id):
            self.store.log_metrics(
                self.run_id, {**_prefixed(VALID_PREFIX, event.valid), **_prefixed(TEST_PREFIX, event.test)}, step=None
            )
            if event.best_epoch is not None:
                self.store.set_tags(self.run_id, {"best_epoch": str(event.best_epoch)})
            self.store.finish_run(self.run_id, event.status, event.error)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    # Tolerates keys that already carry the prefix, so either spelling reaches the same stored key.
    return {key if key.startswith(prefix) else prefix + key: value for key, value in metrics.items()}
