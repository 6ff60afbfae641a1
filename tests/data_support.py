"""A tiny dataset in the documented generic format, for any layer's tests (the tiny_dataset fixture builds one)."""

from __future__ import annotations

import json
from pathlib import Path


def write_generic_dataset(folder: Path, users: int = 60, items: int = 30, length: int = 8) -> Path:
    """Users walk through items in a fixed cyclic order, so next-item prediction is learnable."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user,item,timestamp"]
    for u in range(users):
        for t in range(length + u % 4):
            lines.append(f"u{u},i{(u + t) % items},{1000 + 10 * t}")
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    with (folder / "items.jsonl").open("w") as fh:
        for i in range(items):
            fh.write(
                json.dumps({"id": f"i{i}", "title": f"Item number {i}", "genres": ["Drama" if i % 2 else "Comedy"]})
                + "\n"
            )
    return folder


def train_tiny_run(tmp_path: Path, dataset: Path, seed: int, **extra) -> int:
    """A one-epoch ID SASRec on the tiny dataset, recorded in tmp_path/runs.db; its run id."""
    from engine.config import load_config
    from engine.pipeline import run_experiment

    flags = {
        "data.dataset": str(dataset),
        "db": str(tmp_path / "runs.db"),
        "train.epochs": 1,
        "train.seed": seed,
        "model.hidden_size": 16,
        "model.num_layers": 1,
        "model.max_len": 12,
        "train.batch_size": 32,
        "train.device": "cpu",
        "eval.ks": "10",
        "knowledge.method": "id",
        **extra,
    }
    return run_experiment(load_config(flags=flags), cwd=tmp_path).run_id
