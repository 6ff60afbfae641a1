"""The one pipeline both front ends call: config → data → item representation → model → training → evaluation → store.

`run_experiment` owns the run's lifecycle in the store (RUNNING → FINISHED / FAILED / INTERRUPTED) and reports
everything through events, so the CLI, the TUI and the store all see the same stream.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from engine.config import ConfigError, RunConfig, flatten_dotted, validate_config, validate_for_dataset
from engine.events import EventSink, RunFinished, RunStarted, Status, fan_out, ignore_events
from engine.store.db import StoreError
from engine.workspace import Workspace

if TYPE_CHECKING:
    from engine.training.distributed import DistributedContext


@dataclass
class RunResult:
    run_id: int | None
    status: str
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    checkpoint: str | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_experiment(
    cfg: RunConfig,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    cwd: Path | None = None,
    resume_run_id: int | None = None,
    distributed: "DistributedContext | None" = None,
) -> RunResult:
    """Train and evaluate one configuration, recording it in `cfg.db` of its workspace (engine.workspace: the
    database, checkpoints and caches resolve inside `cfg.workspace`; unset, inside `cwd`, by default the current
    folder, which also anchors a relative dataset path or data root).

    Raises KeyboardInterrupt after marking the run INTERRUPTED (the CLI exits 130); a cancel through
    `should_stop` returns an INTERRUPTED result instead. Any other failure once the run row exists marks the run
    FAILED and re-raises; a failure before (a bad setting, missing data, an unusable database) leaves the store
    as it was. `resume_run_id` continues that INTERRUPTED run (see `resume_experiment`, which also supplies its
    stored config) in the same run row.
    Under torchrun every rank calls this with its `distributed` context; only rank 0 opens the database and
    writes (run row, artifacts, files), and only its result carries the metrics (the caller leaves the process
    group afterwards).
    """
    validate_config(cfg)  # the TUI's path too: a bad config fails here, before torch, data, the store or a run row
    from engine.methods import check_method_config

    check_method_config(cfg)  # what the method itself cannot take (init with an adapter), as early
    from engine.store import open_store
    from engine.training.distributed import DistributedContext, ReplicaStore

    cwd = Path(cwd or Path.cwd())
    workspace = Workspace.of(cfg, cwd)
    cfg = dataclasses.replace(cfg, workspace=str(workspace.root))  # the run records where its files are
    distributed = distributed or DistributedContext()  # --- DDP: no-ops in one process ---
    if distributed.is_main:
        store = open_store(workspace.db, require_writable=True)  # first: an unusable database fails before any work
    else:
        store = ReplicaStore()  # one writer: the other ranks never open the database file
    try:
        return _run(store, cfg, on_event, should_stop, cwd, workspace, resume_run_id, distributed)
    finally:
        store.close()


def resume_experiment(
    db: str | Path,
    run_id: int,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    cwd: Path | None = None,
    distributed: "DistributedContext | None" = None,
    join_device: str = "auto",
    workspace: str | Path | None = None,
) -> RunResult:
    """Continue the INTERRUPTED run `run_id` of the database `db` from its last finished epoch, with its stored
    config; it ends as an uninterrupted run of that config would (same metrics on the CPU).

    Under torchrun every rank calls this: the ranks join on `join_device` (the stored train.device, which
    `kirec run --nproc` passes on; it picks the process group's backend before the config can be shared), rank 0
    reads the stored config and hands it to the others, which never open the database.
    The run continues in the caller's `workspace` (None: `cwd`), whatever folder its stored config names."""
    from engine.store import open_store
    from engine.training.device import resolve_device
    from engine.training.distributed import DistributedContext

    distributed = distributed or DistributedContext()
    joined = distributed.join(resolve_device(join_device)) if distributed.enabled else None

    def stored_config() -> dict:
        with open_store(db, create=False, repair_orphans=True) as store:
            return store.get_run(run_id).config

    cfg = RunConfig.from_dict(distributed.on_main(stored_config), source=f"run {run_id} config")
    cfg.db = str(db)  # the stored config may name the database as another working folder saw it
    cfg.workspace = None if workspace is None else str(workspace)
    if joined is not None and distributed.place(resolve_device(cfg.train.device)) != joined:  # alike on every rank
        raise ConfigError(
            f"run {run_id} trains on train.device={cfg.train.device}, but the ranks joined on {joined}; "
            f"set KIREC_TRAIN__DEVICE={cfg.train.device} for them"
        )
    return run_experiment(cfg, on_event, should_stop, cwd, resume_run_id=run_id, distributed=distributed)


def _run(
    store,
    cfg: RunConfig,
    on_event: EventSink,
    should_stop,
    cwd: Path,
    workspace: Workspace,
    resume_run_id: int | None,
    distributed: "DistributedContext",
) -> RunResult:
    import torch

    from engine.data.preprocess import load_dataset
    from engine.evaluation.evaluator import RankingEvaluator
    from engine.knowledge import build_items
    from engine.methods import build_run_model, get_method
    from engine.store.recorder import StoreRecorder
    from engine.training.checkpoint import BEST_KIND, STATE_KIND, RunCheckpoints, new_run_token
    from engine.training.device import resolve_device
    from engine.training.seeding import seed_everything
    from engine.training.trainer import TrainingInterrupted, train

    # Everything that can refuse the run comes before its row exists.
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    device = resolve_device(cfg.train.device)  # a bad device spec fails before anything is stored
    device = distributed.join(device)  # --- DDP: this rank's device (no-op in one process) ---

    def checkpoint_folder() -> Path:  # rank 0 reads the store and makes the folder; the others are told where it is
        folder = resumed.folder if resumed is not None and resumed.folder is not None else workspace.checkpoint_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"train.checkpoint_dir: cannot create {folder}: {exc.strerror}") from None
        return folder

    resumed = _shared_resume_point(store, resume_run_id, distributed) if resume_run_id is not None else None
    folder = distributed.on_main(checkpoint_folder)
    with distributed.main_first():  # rank 0 fills the data and knowledge caches; the others then read them
        dataset = load_dataset(cfg.data, cwd=cwd, on_event=on_event, cache_dir=workspace.dataset_cache)
        validate_for_dataset(cfg, dataset.num_items)  # the rules that need the data (eval.num_sampled < items)
        if resumed is not None and dataset.fingerprint != resumed.dataset_fingerprint:
            raise RunNotResumableError(
                f"run {resume_run_id} was trained on dataset fingerprint {resumed.dataset_fingerprint[:12]}, but "
                f"preprocessing now gives {dataset.fingerprint[:12]}: the data or its options changed, so it cannot continue"
            )
        seed_everything(cfg.train.seed)
        items, knowledge_info = build_items(
            cfg, dataset, cwd=cwd, on_event=on_event, device=device, should_stop=should_stop
        )
    model = build_run_model(cfg, dataset.num_items, items).to(device)  # the method's model (engine.methods)
    get_method(cfg.knowledge.method).prepare_training(model, dataset)  # training-only state (llm-esr's neighbours)
    stop_now = distributed.agreed(should_stop)  # every rank returns here, or none
    if stop_now is not None and stop_now():
        return RunResult(resume_run_id, "INTERRUPTED", error="cancelled before training started")

    name = cfg.name or f"{cfg.knowledge.method}-{cfg.model.backbone}-{dataset.name}"
    if resumed is None:
        params = flatten_dotted(cfg.to_dict())  # dotted keys, as `runs compare` shows them
        params.update({f"knowledge.{k}": v for k, v in knowledge_info.items() if not isinstance(v, (list, dict))})
        params["eval.protocol_label"] = _protocol_label(cfg)
        params["model.parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        run_id = store.create_run(
            name=name,
            config=cfg.to_dict(),
            dataset=dataset.name,
            dataset_fingerprint=dataset.fingerprint,
            backbone=cfg.model.backbone,
            method=cfg.knowledge.method,
            device=_describe_device(device),
            params=params,
            tags={"host": socket.gethostname()},
        )
    else:
        run_id = resume_run_id
        if distributed.is_main:
            store.reopen_run(run_id, after_step=resumed.state.epoch if resumed.state is not None else 0)
    run_id = distributed.from_main(run_id)  # a ReplicaStore creates no row: rank 0's id
    sink = fan_out(StoreRecorder(store, run_id), on_event)
    started = time.perf_counter()
    # From here on the run row exists: whatever goes wrong ends it FAILED (or INTERRUPTED), never left RUNNING.
    try:
        sink(RunStarted(run_id=run_id, name=name, device=_describe_device(device), config=cfg.to_dict()))
        if resumed is not None:
            sink(
                Status(
                    f"resuming run {run_id} after epoch {resumed.state.epoch}"
                    if resumed.state is not None
                    else f"run {run_id} stopped before its first epoch finished: training it from the start"
                )
            )

        def record(kind: str, path: Path, sha256: str, epoch: int) -> None:
            store.set_artifact(
                run_id, kind, path, sha256, tags={"best_epoch": str(epoch)} if kind == BEST_KIND else None
            )

        # Every rank names the run's files alike (rank 0's token); only rank 0 writes them and tells the store.
        checkpoints = RunCheckpoints(
            folder, run_id, distributed.on_main(new_run_token), record if distributed.is_main else None
        )
        if resumed is not None:
            checkpoints.adopt(resumed.best_path, resumed.state_path)
        valid_eval = RankingEvaluator(dataset, "valid", cfg.eval, cfg.model.max_len)
        test_eval = RankingEvaluator(dataset, "test", cfg.eval, cfg.model.max_len)
        result = train(
            model,
            dataset,
            cfg,
            validate=lambda m: valid_eval.evaluate(m, device),
            on_event=sink,
            should_stop=should_stop,
            checkpoints=checkpoints,
            resume=resumed.state if resumed is not None else None,
            distributed=distributed,
        )
        if not distributed.is_main:  # the same model as rank 0's, which alone evaluates, records and reports
            checkpoint = str(result.checkpoint_path) if result.checkpoint_path is not None else None
            return RunResult(run_id, "FINISHED", best_epoch=result.best_epoch, checkpoint=checkpoint)
        sink(Status("evaluating the best checkpoint on the test split"))
        valid = valid_eval.evaluate(model, device)
        # ---- bench (engine/bench/artifacts.py): keep the per-user test ranks for significance tests; ranked once ----
        from engine.bench.artifacts import record_test_ranks

        test_ranks = test_eval.ranks(model, device)
        test = test_eval.metrics(test_ranks)
        record_test_ranks(store, checkpoints.folder, checkpoints.stem, run_id, test_eval, test_ranks, result)
        # ---- end bench ----
        info = {
            "train_seconds": result.train_seconds,
            "total_seconds": time.perf_counter() - started,
            "epochs_run": result.epochs_run,
            **knowledge_info,
        }
        store.log_metrics(
            run_id, {"info/train_seconds": result.train_seconds, "info/epochs_run": result.epochs_run}, None
        )
        sink(RunFinished(run_id, "FINISHED", valid=valid, test=test, best_epoch=result.best_epoch))
        _drop_training_state(store, run_id, checkpoints, STATE_KIND)
        checkpoint = str(result.checkpoint_path) if result.checkpoint_path is not None else None
        return RunResult(run_id, "FINISHED", valid, test, result.best_epoch, checkpoint, info=info)
    except TrainingInterrupted:
        sink(RunFinished(run_id, "INTERRUPTED", error="cancelled"))
        return RunResult(run_id, "INTERRUPTED", error="cancelled")
    except KeyboardInterrupt:
        sink(RunFinished(run_id, "INTERRUPTED", error="interrupted (Ctrl-C)"))
        raise
    except Exception as exc:
        sink(RunFinished(run_id, "FAILED", error=f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


class RunNotResumableError(StoreError):
    """The run cannot be continued (not INTERRUPTED, deleted, or its data changed); the message is one line."""


@dataclass
class _ResumePoint:
    state: Any  # TrainingState, or None when no epoch had finished
    state_path: Path | None
    best_path: Path | None
    folder: Path | None  # where the run's files are, so new ones go beside them
    dataset_fingerprint: str
    state_sha256: str | None = None


def _resume_point(store, run_id: int) -> _ResumePoint:
    from engine.training.checkpoint import BEST_KIND, STATE_KIND, load_training_state, verify_sha256

    store.mark_orphans()  # a run whose writer was killed is INTERRUPTED, not RUNNING
    detail = store.get_run(run_id)
    status = detail.summary.status
    if detail.summary.deleted:
        raise RunNotResumableError(f"run {run_id} was deleted; it cannot be resumed")
    if status != "INTERRUPTED":
        why = {
            "RUNNING": f"it is still RUNNING (process {detail.pid} on {detail.hostname})",
            "FINISHED": "it already FINISHED",
            "FAILED": f"it FAILED ({detail.error}); start a new run instead",
        }[status]
        raise RunNotResumableError(f"run {run_id} cannot be resumed: {why}; only INTERRUPTED runs can")
    latest = {a.kind: a for a in detail.artifacts}
    state_artifact, best_artifact = latest.get(STATE_KIND), latest.get(BEST_KIND)
    if state_artifact is None:
        return _ResumePoint(None, None, None, None, detail.dataset_fingerprint)
    what = f"run {run_id} training state"
    state = load_training_state(state_artifact.path, state_artifact.sha256, what)
    best_path = None
    if state.best_epoch is not None:
        if best_artifact is None:
            raise RunNotResumableError(
                f"run {run_id}: its training state names best epoch {state.best_epoch}, "
                "but no best checkpoint is recorded"
            )
        best_path = verify_sha256(best_artifact.path, best_artifact.sha256, f"run {run_id} checkpoint")
    state_path = Path(state_artifact.path)
    return _ResumePoint(
        state, state_path, best_path, state_path.parent, detail.dataset_fingerprint, state_artifact.sha256
    )


def _shared_resume_point(store, run_id: int, distributed: "DistributedContext") -> _ResumePoint:
    """Rank 0 reads and checks the resume point in the store; under DDP it hands the others the files' names
    and hashes (not the tensors), and every rank loads the same training state from the same verified file.
    Rank 0 removes that file only after an epoch, which needs every rank: by then all have read it."""
    from engine.training.checkpoint import load_training_state

    if not distributed.enabled:
        return _resume_point(store, run_id)
    mine = _resume_point(store, run_id) if distributed.is_main else None
    shared = distributed.from_main(dataclasses.replace(mine, state=None) if mine is not None else None)
    if distributed.is_main:
        return mine
    if shared.state_path is not None:
        shared.state = load_training_state(shared.state_path, shared.state_sha256, f"run {run_id} training state")
    return shared


def _drop_training_state(store, run_id: int, checkpoints, kind: str) -> None:
    """A finished run cannot be resumed: its (optimizer-sized) training state file goes."""
    if checkpoints.state_path is not None:
        store.drop_artifact(run_id, kind)
        checkpoints.state_path.unlink(missing_ok=True)


def _protocol_label(cfg: RunConfig) -> str:
    base = "full ranking" if cfg.eval.protocol == "full" else f"sampled: 1 positive + {cfg.eval.num_sampled} negatives"
    return f"{base}, history {'excluded' if cfg.eval.exclude_history else 'included'}"


def _describe_device(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"
