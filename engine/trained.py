"""Reloads a finished run (config, dataset, item representation, best checkpoint) for recommending and inspecting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.data.dataset import SequenceDataset


@dataclass
class TrainedRun:
    run_id: int
    config: RunConfig
    dataset: SequenceDataset
    model: Any  # SequentialBackbone, in eval mode


class RunNotReadyError(RuntimeError):
    """The run has no usable checkpoint (still running, failed, or its files were removed)."""


def load_trained_run(store, run_id: int, cwd: Path | None = None, device: str = "cpu") -> TrainedRun:
    import torch

    from engine.data.preprocess import load_dataset
    from engine.knowledge import build_items
    from engine.models.factory import build_model

    cwd = Path(cwd or Path.cwd())
    detail = store.get_run(run_id)
    cfg = RunConfig.from_dict(detail.config, source=f"run {run_id} config")
    checkpoints = [a.path for a in detail.artifacts if a.kind == "checkpoint"]
    if not checkpoints or not Path(checkpoints[-1]).exists():
        raise RunNotReadyError(f"run {run_id} ({detail.summary.status}) has no checkpoint on disk to load")
    dataset = load_dataset(cfg.data, cwd=cwd)
    if dataset.fingerprint != detail.dataset_fingerprint:
        raise RunNotReadyError(
            f"run {run_id} was trained on dataset '{detail.summary.dataset}' fingerprint {detail.dataset_fingerprint[:12]}, "
            f"but preprocessing now gives {dataset.fingerprint[:12]}: the data or its options changed"
        )
    torch_device = torch.device(device)
    items, _ = build_items(cfg, dataset, cwd=cwd, device=torch_device)
    model = build_model(cfg.model, dataset.num_items, items)
    model.load_state_dict(torch.load(checkpoints[-1], map_location=torch_device, weights_only=True))
    model.to(torch_device).eval()
    return TrainedRun(run_id, cfg, dataset, model)
