"""Training: epoch batches, the device, seeding, the loop with early stopping, and a run's checkpoint files."""

from engine.training.batches import Batch, SequenceBatcher
from engine.training.checkpoint import CheckpointError, RunCheckpoints, TrainingState
from engine.training.device import device_stats, resolve_device
from engine.training.seeding import seed_everything
from engine.training.trainer import TrainingInterrupted, TrainResult, train

__all__ = [
    "Batch",
    "CheckpointError",
    "RunCheckpoints",
    "SequenceBatcher",
    "TrainingState",
    "TrainResult",
    "TrainingInterrupted",
    "device_stats",
    "resolve_device",
    "seed_everything",
    "train",
]
