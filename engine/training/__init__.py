"""Training: epoch batches, the device, seeding and the loop with early stopping."""

from engine.training.batches import Batch, SequenceBatcher
from engine.training.device import device_stats, resolve_device
from engine.training.seeding import seed_everything
from engine.training.trainer import TrainingInterrupted, TrainResult, train

__all__ = [
    "Batch", "SequenceBatcher", "TrainResult", "TrainingInterrupted", "device_stats", "resolve_device",
    "seed_everything", "train",
]
