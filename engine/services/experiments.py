"""Training use cases: run a configuration, resume an INTERRUPTED run, check and join a multi-process launch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from engine.config import RunConfig
from engine.events import EventSink, ignore_events

if TYPE_CHECKING:
    from engine.pipeline import RunResult
    from engine.training.distributed import DistributedContext


def run(cfg: RunConfig, on_event: EventSink = ignore_events, should_stop: Callable[[], bool] | None = None,
        cwd: Path | None = None, distributed: "DistributedContext | None" = None) -> "RunResult":
    """Train and evaluate `cfg`, recorded in its database (see engine.pipeline.run_experiment)."""
    from engine.pipeline import run_experiment

    return run_experiment(cfg, on_event, should_stop, cwd, distributed=distributed)


def resume(db: str | Path, run_id: int, on_event: EventSink = ignore_events,
           should_stop: Callable[[], bool] | None = None, cwd: Path | None = None,
           distributed: "DistributedContext | None" = None, join_device: str = "auto",
           workspace: str | Path | None = None) -> "RunResult":
    """Continue the INTERRUPTED run `run_id` from its last finished epoch, with its stored config, in the
    caller's `workspace` (None: `cwd`)."""
    from engine.pipeline import resume_experiment

    return resume_experiment(db, run_id, on_event, should_stop, cwd, distributed, join_device, workspace)


def stored_train_settings(db: str | Path, run_id: int) -> dict[str, Any]:
    """A stored run's `train` settings, read without writing."""
    from engine.store import open_store

    with open_store(db, create=False) as store:
        return dict(store.get_run(run_id).config.get("train", {}))


def check_launch(device_setting: str, nproc: int, batch_size: int) -> None:
    """Refuses (ConfigError) a multi-process launch that cannot work, before any process starts."""
    from engine.training.device import resolve_device
    from engine.training.distributed import check_launch as check

    check(resolve_device(device_setting), nproc, batch_size)


def distributed_context(env: Mapping[str, str]) -> "DistributedContext":
    """This process's place under torchrun (its variables in `env`); one process without them."""
    from engine.training.distributed import DistributedContext

    return DistributedContext.from_env(env)
