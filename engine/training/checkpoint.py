"""A run's checkpoint files: the best weights (what `recommend` serves) and the resumable training state.

Every file is bound to its run: its name carries the run id and a random token (two databases, or two runs
numbered alike, never share a file), and the store records its sha256 (see `ArtifactRecorder`), which
`verify_sha256` checks before anything is loaded. A new file never replaces an old one in place: it is written
under a new name (the epoch is in it), the store is told, and only then is the previous file removed, so that a
kill at any moment leaves the store pointing at a complete file whose hash matches.

Files load with `weights_only=True`: only tensors and plain containers, never arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engine.store.db import StoreError
from engine.workspace import Workspace

BEST_KIND = "checkpoint"  # artifact kind of the best weights (the name earlier versions used)
STATE_KIND = "training_state"  # artifact kind of the last finished epoch's resumable state
STATE_FORMAT = 1

# (kind, path, sha256, epoch): told after each file is complete, before the previous one is removed.
ArtifactRecorder = Callable[[str, Path, str, int], None]


class CheckpointError(StoreError):
    """A checkpoint file that is missing, altered, or not the one its run recorded; the message is one line."""


def default_checkpoint_dir(db_path: str | Path) -> Path:
    """`<db folder>/<db stem>.checkpoints`: each database keeps its own runs' files beside it."""
    return Workspace.at(db=Path(db_path).absolute()).checkpoint_dir()


def resolve_checkpoint_dir(setting: str | None, db_path: str | Path, cwd: Path) -> Path:
    """The folder a run's checkpoints go to, with the workspace `cwd` (the rule is engine.workspace's)."""
    return Workspace.at(cwd, db=Path(db_path).absolute(), checkpoint_dir=setting).checkpoint_dir()


def new_run_token() -> str:
    return secrets.token_hex(4)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str | None, what: str) -> Path:
    """`path` if it exists and hashes to `expected` (None: recorded by an older kirec, nothing to compare)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} is missing (moved or deleted?)")
    if expected is not None:
        actual = sha256_of(path)
        if actual != expected:
            raise CheckpointError(
                f"{what}: {path} has sha256 {actual[:12]}, not the {expected[:12]} its run recorded; "
                "the file was replaced or altered, refusing to load it"
            )
    return path


@dataclass
class TrainingState:
    """Everything needed to continue training after `epoch` exactly as an uninterrupted run would."""

    epoch: int  # the last finished epoch
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, Any]  # see capture_rng / restore_rng
    best_epoch: int | None
    best_score: float
    best_valid: dict[str, float]
    train_seconds: float
    elapsed_seconds: float  # wall time since training started, for the time budget
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_file_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, **self.__dict__}

    @classmethod
    def from_file_dict(cls, values: dict[str, Any]) -> "TrainingState":
        if values.get("format") != STATE_FORMAT:
            raise CheckpointError(f"training state format {values.get('format')!r} is not {STATE_FORMAT}")
        return cls(**{k: v for k, v in values.items() if k != "format"})


def capture_rng(batcher_rng: np.random.Generator, negatives: torch.Generator) -> dict[str, Any]:
    """Every generator training draws from: torch's (dropout, and CUDA's), NumPy's and Python's globals,
    the batcher's (shuffling, masks) and the negatives'. Kept as tensors and plain values (weights_only-safe)."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": _python_state(random.getstate()),
        "batcher": batcher_rng.bit_generator.state,
        "negatives": negatives.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], batcher_rng: np.random.Generator, negatives: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    batcher_rng.bit_generator.state = state["batcher"]
    negatives.set_state(state["negatives"])


def _python_state(state: tuple) -> tuple:
    version, internal, gauss = state
    return (version, list(internal), gauss)


class RunCheckpoints:
    """Names, writes and removes one run's checkpoint files in `folder`, telling `record` about each new one."""

    def __init__(self, folder: Path, run_id: int, token: str, record: ArtifactRecorder | None = None):
        self.folder = Path(folder)
        self.run_id, self.token = run_id, token
        self.record = record or (lambda *_: None)
        self.best_path: Path | None = None
        self.state_path: Path | None = None

    @property
    def stem(self) -> str:
        return f"run-{self.run_id}-{self.token}"

    def save_best(self, weights: dict[str, torch.Tensor], epoch: int) -> Path:
        self.best_path = self._replace(BEST_KIND, weights, f"{self.stem}-e{epoch}.pt", epoch, self.best_path)
        return self.best_path

    def save_state(self, state: TrainingState) -> Path:
        self.state_path = self._replace(
            STATE_KIND, state.to_file_dict(), f"{self.stem}-state-e{state.epoch}.pt", state.epoch, self.state_path
        )
        return self.state_path

    def load_best(self, device: torch.device) -> dict[str, torch.Tensor]:
        assert self.best_path is not None
        return torch.load(self.best_path, map_location=device, weights_only=True)

    def adopt(self, best_path: Path | None, state_path: Path | None) -> None:
        """Continue a resumed run: its existing files are the ones the next saves replace."""
        self.best_path, self.state_path = best_path, state_path

    def _replace(self, kind: str, payload: Any, name: str, epoch: int, previous: Path | None) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        partial = path.with_name(name + ".partial")
        torch.save(payload, partial)
        digest = sha256_of(partial)
        os.replace(partial, path)
        self.record(kind, path, digest, epoch)
        if previous is not None and previous != path:
            previous.unlink(missing_ok=True)
        return path


def load_training_state(path: str | Path, sha256: str | None, what: str) -> TrainingState:
    """On the CPU: the generator states must live there; the optimizer and model move their tensors on loading."""
    checked = verify_sha256(path, sha256, what)
    try:
        values = torch.load(checked, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say so in one line
        raise CheckpointError(f"{what}: {checked} cannot be read: {type(exc).__name__}: {exc}") from None
    return TrainingState.from_file_dict(values)
