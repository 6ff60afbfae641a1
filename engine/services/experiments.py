"""Training use cases: run a configuration, resume an INTERRUPTED run, check and join a multi-process launch,
and the plain ID baseline beside a knowledge run (found in the store or trained)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from engine.config import KnowledgeConfig, RunConfig
from engine.events import EventSink, Status, ignore_events

if TYPE_CHECKING:
    from engine.pipeline import RunResult
    from engine.training.distributed import DistributedContext


def run(
    cfg: RunConfig,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    cwd: Path | None = None,
    distributed: "DistributedContext | None" = None,
) -> "RunResult":
    """Train and evaluate `cfg`, recorded in its database (see engine.pipeline.run_experiment)."""
    from engine.pipeline import run_experiment

    return run_experiment(cfg, on_event, should_stop, cwd, distributed=distributed)


def resume(
    db: str | Path,
    run_id: int,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    cwd: Path | None = None,
    distributed: "DistributedContext | None" = None,
    join_device: str = "auto",
    workspace: str | Path | None = None,
) -> "RunResult":
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


# ---- the plain ID model beside a run (issue #10: the first run shows the method against its baseline) ----

BASELINE_METHOD = "id"


@dataclass
class Baseline:
    """The plain ID model's run beside a KIRec run: found in the store (`reused`) or trained for it."""

    run_id: int | None
    status: str
    reused: bool
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None

    def gain(self, test: Mapping[str, float]) -> dict[str, float]:
        """Relative test gain of `test` (the KIRec run's metrics) over this baseline, per metric both have."""
        return {
            key: (test[key] - value) / value
            for key, value in self.test.items()
            if key in test and key != "users" and value > 0
        }

    def to_json(self, test: Mapping[str, float] | None = None) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if test is not None:
            out["gain"] = self.gain(test)
        return out


def baseline_config(cfg: RunConfig) -> RunConfig:
    """`cfg` as the plain ID model: the same data, backbone, model, training and evaluation settings (seed too),
    with knowledge.method = id and every other knowledge setting at its default, since an id run ignores them
    (so one baseline serves every fusion and text of the same run, and it is the config a bench's id cell has)."""
    base = RunConfig.from_dict(cfg.to_dict(), source="baseline")
    base.knowledge = KnowledgeConfig(method=BASELINE_METHOD)
    base.name = f"{cfg.name} baseline" if cfg.name else ""  # "" : the pipeline's own name, id-<backbone>-<dataset>
    return base


def wants_baseline(cfg: RunConfig) -> bool:
    """A run of a knowledge method is compared with the plain ID model; an id run is that model itself, unless
    side values' embeddings are added to it (knowledge.side_fields)."""
    return cfg.knowledge.method != BASELINE_METHOD or cfg.knowledge.side_fields != "none"


def find_baseline(cfg: RunConfig, cwd: Path | None = None) -> Baseline | None:
    """The newest FINISHED run in `cfg.db` that answers `baseline_config(cfg)` (the bench's rule: the same config
    up to name, database and threads, the same dataset fingerprint, the same code version), or None."""
    from engine.bench.identity import FinishedRuns
    from engine.data.preprocess import load_dataset
    from engine.store import open_store

    base = baseline_config(cfg)
    # the run before it has just loaded (and cached) the same data: read again quietly, for its fingerprint
    dataset = load_dataset(base.data, cwd=Path(cwd or Path.cwd()))
    with open_store(base.db) as store:
        found = FinishedRuns(store).find(base.to_dict(), dataset.name, dataset.fingerprint, store.code_version())
    if found is None:
        return None
    return Baseline(
        found.id,
        "FINISHED",
        reused=True,
        valid=_metrics(found.valid_metrics, "valid/"),
        test=_metrics(found.test_metrics, "test/"),
    )


def find_or_train_baseline(
    cfg: RunConfig,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    cwd: Path | None = None,
) -> Baseline:
    """The plain ID model beside `cfg`: a finished run from the store when one answers it, else trained now and
    recorded as a normal run (named "<name> baseline")."""
    found = find_baseline(cfg, cwd)
    if found is not None:
        on_event(
            Status(
                f"baseline: run {found.run_id} (knowledge.method=id, same data, backbone and seed) "
                "is already in the database"
            )
        )
        return found
    on_event(Status("baseline: training the plain ID model (knowledge.method=id) on the same data, backbone and seed"))
    result = run(baseline_config(cfg), on_event, should_stop, cwd)
    return Baseline(
        result.run_id,
        result.status,
        reused=False,
        valid=dict(result.valid),
        test=dict(result.test),
        best_epoch=result.best_epoch,
    )


def run_with_baseline(
    cfg: RunConfig,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    cwd: Path | None = None,
) -> tuple["RunResult", Baseline | None]:
    """Train `cfg`, then (when it FINISHED and is not an id run) find or train its ID baseline. The run comes
    first, so its id is the one a plain `run` would get and a stop before the baseline keeps it whole."""
    result = run(cfg, on_event, should_stop, cwd)
    if result.status != "FINISHED" or not wants_baseline(cfg):
        return result, None
    return result, find_or_train_baseline(cfg, on_event, should_stop, cwd)


def stored_config(db: str | Path, run_id: int) -> RunConfig:
    """A stored run's config (its database as given here), read without writing."""
    from engine.store import open_store

    with open_store(db, create=False) as store:
        cfg = RunConfig.from_dict(store.get_run(run_id).config, source=f"run {run_id} config")
    cfg.db = str(db)
    return cfg


def _metrics(stored: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {key[len(prefix) :]: value for key, value in stored.items() if key.startswith(prefix)}
