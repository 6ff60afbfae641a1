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

from engine.config import RunConfig, flatten_dotted
from engine.events import EventSink, RunFinished, RunStarted, Status, fan_out, ignore_events

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
    distributed: "DistributedContext | None" = None,
) -> RunResult:
    """Train and evaluate one configuration, recording it in `cfg.db`.

    Raises KeyboardInterrupt after marking the run INTERRUPTED (the CLI exits 130); a cancel through
    `should_stop` returns an INTERRUPTED result instead. Any other failure marks the run FAILED and re-raises.
    Under torchrun every rank calls this with its `distributed` context; only rank 0 writes to the store, and
    only its result carries the test metrics (the caller leaves the process group afterwards).
    """
    import torch

    from engine.data.preprocess import load_dataset
    from engine.evaluation.evaluator import RankingEvaluator
    from engine.knowledge import build_items
    from engine.models.factory import build_model
    from engine.store import open_store
    from engine.store.recorder import StoreRecorder
    from engine.training.device import resolve_device
    from engine.training.distributed import DistributedContext, ReplicaStore
    from engine.training.seeding import seed_everything
    from engine.training.trainer import TrainingInterrupted, train

    cwd = Path(cwd or Path.cwd())
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    device = resolve_device(cfg.train.device)  # a bad device spec fails before anything is stored
    distributed = distributed or DistributedContext()  # --- DDP: no-ops in one process ---
    device = distributed.join(device)
    with distributed.main_first():  # rank 0 fills the data and knowledge caches; the others then read them
        dataset = load_dataset(cfg.data, cwd=cwd, on_event=on_event)
        seed_everything(cfg.train.seed)
        items, knowledge_info = build_items(cfg, dataset, cwd=cwd, on_event=on_event, device=device,
                                            should_stop=should_stop)
    model = build_model(cfg.model, dataset.num_items, items).to(device)

    store = open_store(cfg.db) if distributed.is_main else ReplicaStore()  # one writer
    params = flatten_dotted(cfg.to_dict())  # dotted keys, as `runs compare` shows them
    params.update({f"knowledge.{k}": v for k, v in knowledge_info.items() if not isinstance(v, (list, dict))})
    params["eval.protocol_label"] = _protocol_label(cfg)
    params["model.parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    name = cfg.name or f"{cfg.knowledge.method}-{cfg.model.backbone}-{dataset.name}"
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
    run_id = distributed.from_main(run_id)
    sink = fan_out(StoreRecorder(store, run_id), on_event)
    sink(RunStarted(run_id=run_id, name=name, device=_describe_device(device), config=cfg.to_dict()))

    checkpoint = Path(cfg.train.checkpoint_dir)
    checkpoint = (checkpoint if checkpoint.is_absolute() else cwd / checkpoint) / f"run-{run_id}.pt"
    valid_eval = RankingEvaluator(dataset, "valid", cfg.eval, cfg.model.max_len)
    test_eval = RankingEvaluator(dataset, "test", cfg.eval, cfg.model.max_len)
    started = time.perf_counter()
    try:
        result = train(
            model,
            dataset,
            cfg,
            validate=lambda m: valid_eval.evaluate(m, device),
            on_event=sink,
            should_stop=should_stop,
            checkpoint_path=checkpoint,
            distributed=distributed,
        )
        store.log_artifact(run_id, "checkpoint", str(checkpoint))
        sink(Status("evaluating the best checkpoint on the test split"))
        valid = valid_eval.evaluate(model, device) if distributed.is_main else {}  # the other ranks hold the same
        test = test_eval.evaluate(model, device) if distributed.is_main else {}  # model; only rank 0 reports
        info = {
            "train_seconds": result.train_seconds,
            "total_seconds": time.perf_counter() - started,
            "epochs_run": result.epochs_run,
            **knowledge_info,
        }
        store.log_metrics(run_id, {"info/train_seconds": result.train_seconds, "info/epochs_run": result.epochs_run}, None)
        sink(RunFinished(run_id, "FINISHED", valid=valid, test=test, best_epoch=result.best_epoch))
        return RunResult(run_id, "FINISHED", valid, test, result.best_epoch, str(checkpoint), info=info)
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


def _protocol_label(cfg: RunConfig) -> str:
    base = "full ranking" if cfg.eval.protocol == "full" else f"sampled: 1 positive + {cfg.eval.num_sampled} negatives"
    return f"{base}, history {'excluded' if cfg.eval.exclude_history else 'included'}"


def _describe_device(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"
