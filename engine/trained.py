"""Reloads a finished run (config, dataset, item representation, best checkpoint) for recommending and inspecting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.data.dataset import SequenceDataset
from engine.workspace import Workspace

ITEMS_PREFIX = "items."  # a backbone's item representation in its state dict (SequentialBackbone.items)


@dataclass
class TrainedRun:
    run_id: int
    config: RunConfig
    dataset: SequenceDataset
    model: Any  # SequentialBackbone, in eval mode
    status: str = "FINISHED"
    best_epoch: int | None = None
    checkpoint: Path | None = None
    note: str | None = None  # for a run that has not FINISHED: what is served and what can be done


class RunNotReadyError(RuntimeError):
    """The run has no usable checkpoint (no epoch finished yet, or its files were removed)."""


def load_trained_run(
    store, run_id: int, cwd: Path | None = None, device: str = "cpu", workspace: str | Path | None = None
) -> TrainedRun:
    """The run's best weights so far, verified against the sha256 its run recorded, in the model they were
    trained in, rebuilt from the checkpoint alone: no LLM, encoder or reduction is loaded or run. Its data is
    read in the caller's `workspace` (None: `cwd`, by default the current folder), not the one it was trained in.

    A run that has not FINISHED (RUNNING, INTERRUPTED, FAILED after some epochs) is served from its best
    checkpoint so far, with a `note` saying so: the weights are complete and what the run would report as its
    best; only further training is missing. A checkpoint whose hash differs is refused (CheckpointError).
    """
    import torch

    from engine.data.preprocess import load_dataset
    from engine.knowledge import build_items
    from engine.methods import build_run_model
    from engine.training.checkpoint import BEST_KIND, verify_sha256

    cwd = Path(cwd or Path.cwd())
    detail = store.get_run(run_id)
    status = str(detail.summary.status)
    cfg = RunConfig.from_dict(detail.config, source=f"run {run_id} config")
    cfg.workspace = None if workspace is None else str(workspace)
    paths = Workspace.of(cfg, cwd)
    checkpoints = [a for a in detail.artifacts if a.kind == BEST_KIND]
    if not checkpoints:
        raise RunNotReadyError(_no_checkpoint(run_id, status, detail.error))
    artifact = checkpoints[-1]
    path = paths.path(artifact.path)
    if not path.is_file():
        raise RunNotReadyError(f"run {run_id} ({status}): its checkpoint {path} is missing (moved or deleted?)")
    verify_sha256(path, artifact.sha256, f"run {run_id} checkpoint")  # before spending time on data and items
    best_epoch = int(detail.tags["best_epoch"]) if detail.tags.get("best_epoch", "").isdigit() else None
    dataset = load_dataset(cfg.data, cwd=cwd, cache_dir=paths.dataset_cache)
    if dataset.fingerprint != detail.dataset_fingerprint:
        raise RunNotReadyError(
            f"run {run_id} was trained on dataset '{detail.summary.dataset}' fingerprint {detail.dataset_fingerprint[:12]}, "
            f"but preprocessing now gives {dataset.fingerprint[:12]}: the data or its options changed"
        )
    torch_device = torch.device(device)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # The checkpoint holds the whole item representation (the semantic table a buffer or a parameter, an
    # adapter's frozen input table a buffer): its modules are built from those tensors and filled from them, with
    # no extraction (LLM), encoder or reduction.
    stored_items = {key[len(ITEMS_PREFIX) :]: value for key, value in state.items() if key.startswith(ITEMS_PREFIX)}
    items, _ = build_items(cfg, dataset, cwd=cwd, stored=stored_items)
    model = build_run_model(cfg, dataset.num_items, items)
    model.load_state_dict(state)
    model.to(torch_device).eval()
    notes = []
    if status != "FINISHED":
        epoch = f" (epoch {best_epoch})" if best_epoch is not None else ""
        notes.append(f"run {run_id} is {status}; serving its best checkpoint so far{epoch} at {path}")
        if status == "INTERRUPTED":
            notes[-1] += f"; `kirec run --resume {run_id}` continues it"
    if (
        artifact.sha256 is None
    ):  # recorded before checkpoints had unique names, another database's run may have replaced it
        notes.append(
            f"run {run_id}'s checkpoint {path} was recorded by an older kirec without a hash, "
            "so it cannot be verified to be this run's"
        )
    note = "; ".join(notes) or None
    return TrainedRun(run_id, cfg, dataset, model, status, best_epoch, path, note)


def _no_checkpoint(run_id: int, status: str, error: str | None) -> str:
    if status == "INTERRUPTED":
        return (
            f"run {run_id} is INTERRUPTED before its first epoch finished, so it has no checkpoint yet; "
            f"`kirec run --resume {run_id}` trains it"
        )
    if status == "RUNNING":
        return f"run {run_id} is RUNNING and no epoch has finished yet, so it has no checkpoint; try again later"
    if status == "FAILED":
        return f"run {run_id} FAILED before any epoch finished ({error}), so it has no checkpoint"
    return f"run {run_id} ({status}) has no checkpoint recorded"
