"""The training loop: AdamW, early stopping on validation NDCG@10, best-checkpoint keeping, progress events.

With a `RunCheckpoints`, every new best epoch's weights and, after every epoch, the whole training state
(model, optimizer, every generator, early stopping) are written, so `resume` continues a killed run exactly.

Validation is supplied by the caller (a function of the model returning metrics), so this module knows nothing
about evaluation protocols; it only needs the "NDCG@10" entry.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from engine import registry
from engine.config import ConfigError, RunConfig
from engine.data.dataset import SequenceDataset
from engine.events import DeviceStats, EpochEnd, EpochStarted, EventSink, Status, StepLoss
from engine.models.base import SequentialBackbone
from engine.training.batches import SequenceBatcher
from engine.training.checkpoint import RunCheckpoints, TrainingState, capture_rng, restore_rng
from engine.training.device import device_stats, resolve_device
from engine.training.distributed import DistributedContext, TrainingStep
from engine.training.memory import release_freed_memory
from engine.training.seeding import seed_everything

SELECTION_METRIC = "NDCG@10"

Validate = Callable[[SequentialBackbone], dict[str, float]]


@dataclass
class TrainResult:
    best_epoch: int | None  # None when no epoch finished
    best_valid: dict[str, float]
    epochs_run: int
    checkpoint_path: Path | None
    train_seconds: float  # optimisation time only, summed over epochs (validation excluded)
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: epoch, train_loss, seconds, metrics
    stopped_early: bool = False  # patience ran out or the time budget was spent
    stop_reason: str = "epochs"  # epochs | patience | time-budget


class TrainingInterrupted(Exception):
    """should_stop() asked to stop. Raised between steps; the model holds the best weights seen so far
    (the checkpoint file, if any, is complete) and `result` describes the finished epochs."""

    def __init__(self, result: TrainResult):
        super().__init__(f"training interrupted after {result.epochs_run} complete epoch(s)")
        self.result = result


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix products run in hardware. Elsewhere torch emulates them, slower than fp32."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _mixed_precision(device: torch.device, enabled: bool, cpu_bf16: bool = False) -> tuple[Callable[[], Any], Any]:
    """(a context-manager factory, a GradScaler or None). On CUDA (`enabled`): bf16 where supported (no scaler
    needed), else fp16 with a GradScaler. On a CPU (`cpu_bf16`, decided by the caller): bf16, no scaler. Measured
    ad hoc on Beauty's shapes (SASRec, batch 512, 1 thread, AVX512-BF16, median of 6 steps): 651 -> 391 ms a step."""
    if device.type == "cpu" and cpu_bf16:
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16), None
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext, None
    if torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16), None
    return lambda: torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def train(
    model: SequentialBackbone,
    dataset: SequenceDataset,
    cfg: RunConfig,
    validate: Validate,
    on_event: EventSink,
    should_stop: Callable[[], bool] | None = None,
    checkpoints: RunCheckpoints | None = None,
    resume: TrainingState | None = None,
    distributed: DistributedContext | None = None,
) -> TrainResult:
    """Train until `cfg.train.epochs`, `patience` epochs without a better validation NDCG@10, or the time budget.

    Seeds the global generators with `cfg.train.seed` (dropout); shuffling, masking and negatives use their own.
    At the end the model holds the best epoch's weights: read back from `checkpoints` (`weights_only=True`), or
    from memory when there are none. `resume` (needs `checkpoints`, adopted at the run's files) continues after
    its epoch with every state restored, so the result equals the uninterrupted run's.
    Under DDP (`distributed`, already joined) this runs on every rank: see engine/training/distributed.py. Rank 0
    alone writes the checkpoint files; every rank calls `checkpoints` alike, and the others never write.
    A method's extra loss term (`model.extra_loss_term()`, engine.models.base.ExtraLoss) is added to the loss at
    every step; without one nothing is added or computed. `model.start_epoch()` runs before each epoch's first
    step, inside its clock (a no-op but for LLM-ESR's once-an-epoch teachers).
    """
    tc = cfg.train
    registry.entry("loss", tc.loss)  # an unknown name: ConfigError naming train.loss, before any work
    if tc.epochs < 1:
        raise ConfigError(f"train.epochs: must be at least 1, got {tc.epochs}")
    if tc.patience < 1:
        raise ConfigError(f"train.patience: must be at least 1, got {tc.patience}")
    distributed = distributed or DistributedContext()  # --- DDP hooks: no-ops in one process ---
    device = distributed.place(resolve_device(tc.device))
    seed_everything(tc.seed)
    model.to(device)
    batcher = SequenceBatcher(
        dataset,
        model.objective,
        cfg.model.max_len,
        tc.batch_size,
        cfg.model.mask_prob,
        tc.seed,
        shard=distributed.shard,
    )
    negatives_generator = torch.Generator().manual_seed(tc.seed)
    step_module = distributed.wrap(TrainingStep(model, tc.loss, tc.num_negatives, negatives_generator))
    should_stop = distributed.agreed(should_stop)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    cpu_bf16 = tc.amp_cpu and device.type == "cpu" and cpu_has_native_bf16()  # asked once: the warning agrees
    autocast, scaler = _mixed_precision(device, tc.amp, cpu_bf16)
    if tc.amp_cpu and device.type == "cpu" and not cpu_bf16:
        # A notice, not a warning: amp_cpu is on by default and fp32 is the right choice on such a CPU.
        on_event(Status("train.amp_cpu: this CPU has no native bf16 (AVX512-BF16 or AMX); training in fp32"))
    schedule = registry.load("lr_schedule", tc.lr_schedule)
    steps_per_epoch = len(batcher)
    total_steps, warmup_steps = tc.epochs * steps_per_epoch, tc.warmup_epochs * steps_per_epoch

    result = TrainResult(None, {}, 0, None, 0.0)
    best_state: dict[str, torch.Tensor] | None = None  # in memory when there are no checkpoint files
    best_score = -math.inf
    started = time.perf_counter()
    first_epoch = 1
    if resume is not None:
        if checkpoints is None:
            raise ValueError("train: resuming needs the run's checkpoints (its best weights live there)")
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        if scaler is not None and resume.scaler is not None:
            scaler.load_state_dict(resume.scaler)
        restore_rng(resume.rng, batcher.rng, negatives_generator)
        best_score = resume.best_score
        result.best_epoch, result.best_valid = resume.best_epoch, dict(resume.best_valid)
        result.epochs_run, result.train_seconds = resume.epoch, resume.train_seconds
        result.history = list(resume.history)
        result.checkpoint_path = checkpoints.best_path
        started -= resume.elapsed_seconds
        first_epoch = resume.epoch + 1

    def restore_best() -> None:
        if result.best_epoch is None:
            return
        if checkpoints is not None and distributed.enabled:
            # Rank 0 has written the file when it reaches this broadcast; the others load that very file.
            checkpoints.best_path = result.checkpoint_path = distributed.from_main(checkpoints.best_path)
        model.load_state_dict(checkpoints.load_best(device) if checkpoints is not None else best_state)

    def stop_reason(epoch: int) -> str | None:
        if result.best_epoch is not None and epoch - result.best_epoch >= tc.patience:
            return "patience"
        if tc.max_train_seconds is not None and distributed.on_main(  # rank 0's clock decides for every rank
            lambda: time.perf_counter() - started >= tc.max_train_seconds
        ):
            return "time-budget"
        return None

    # A run killed after its last epoch's state was saved has nothing left to train.
    reason = stop_reason(resume.epoch) if resume is not None else None
    if reason is not None:
        result.stopped_early, result.stop_reason = True, reason
        first_epoch = tc.epochs + 1

    for epoch in range(first_epoch, tc.epochs + 1):
        steps = len(batcher)
        on_event(EpochStarted(epoch=epoch, steps=steps))
        model.train()
        epoch_start = time.perf_counter()
        model.start_epoch()  # inside the epoch's clock: what it computes is training time
        loss_sum = torch.zeros((), device=device)
        for step, batch in enumerate(batcher.epoch(), start=1):
            if should_stop is not None and should_stop():
                result.train_seconds += time.perf_counter() - epoch_start
                restore_best()
                raise TrainingInterrupted(result)
            batch = batch.to(device)
            rate = tc.lr * schedule((epoch - 1) * steps_per_epoch + step - 1, total_steps, warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = rate
            with autocast():
                loss = step_module(batch.inputs, batch.targets, batch.weight)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            value = distributed.average(loss.detach()).item()  # the global batch's loss
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"train: loss became {value} at epoch {epoch}, step {step} (try a lower train.lr)"
                )
            loss_sum += loss.detach()
            on_event(StepLoss(epoch=epoch, step=step, steps=steps, loss=value))
        train_seconds = time.perf_counter() - epoch_start
        result.train_seconds += train_seconds
        release_freed_memory()

        # Every eval.every epochs, at the last one, and wherever the run would stop (patience or the time budget):
        # the weights it ends with are always judged. Unvalidated, the epoch keeps this verdict (None): asked again
        # after the epoch's bookkeeping, the clock could end the run at weights nobody validated.
        reason = stop_reason(epoch)
        evaluate = epoch % cfg.eval.every == 0 or epoch == tc.epochs or reason is not None
        valid: dict[str, float] = {}
        eval_start = time.perf_counter()
        if evaluate:
            model.eval()
            with torch.no_grad():  # rank 0 validates; every rank gets its figures, so all decide alike
                valid = distributed.on_main(lambda: {k: float(v) for k, v in validate(model).items()})
            release_freed_memory()
            if SELECTION_METRIC not in valid:
                raise KeyError(f"validate: returned {sorted(valid)} but early stopping needs {SELECTION_METRIC!r}")
        eval_seconds = time.perf_counter() - eval_start

        score = valid.get(SELECTION_METRIC, -math.inf)
        is_best = score > best_score
        if is_best:
            best_score, result.best_epoch, result.best_valid = score, epoch, dict(valid)
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if checkpoints is not None:
                if distributed.is_main:  # the one writer; the others learn the name in restore_best
                    result.checkpoint_path = checkpoints.save_best(state, epoch)
            else:
                best_state = state
        result.epochs_run = epoch
        train_loss = float(distributed.average(loss_sum)) / steps
        result.history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_seconds": train_seconds,
                "eval_seconds": eval_seconds,
                **valid,
            }
        )
        on_event(
            EpochEnd(
                epoch=epoch,
                train_loss=train_loss,
                valid=valid,
                train_seconds=train_seconds,
                eval_seconds=eval_seconds,
                is_best=is_best,
            )
        )
        stats: DeviceStats = device_stats(device)
        on_event(stats)
        if checkpoints is not None and distributed.is_main:
            # After the epoch's events (its metrics are stored): a kill before this line replays the epoch.
            checkpoints.save_state(
                TrainingState(
                    epoch=epoch,
                    model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    scaler=scaler.state_dict() if scaler is not None else None,
                    rng=capture_rng(batcher.rng, negatives_generator),
                    best_epoch=result.best_epoch,
                    best_score=best_score,
                    best_valid=dict(result.best_valid),
                    train_seconds=result.train_seconds,
                    elapsed_seconds=time.perf_counter() - started,
                    history=list(result.history),
                )
            )

        if evaluate:  # a new best resets patience: ask again
            reason = stop_reason(epoch)
        if reason is not None:
            result.stopped_early, result.stop_reason = True, reason
            break

    restore_best()
    return result
