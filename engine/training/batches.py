"""Each epoch's training batches from a SequenceDataset's training sequences.

All training sequences are cut to their last `max_len` positions and left-padded into one matrix once; an epoch
shuffles users with a seeded generator and pads each batch only to its own longest sequence.
Under DDP (`shard`) each rank builds the same global batches and keeps its own rows of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from engine.config import ConfigError
from engine.data.dataset import PAD, SequenceDataset


@dataclass
class Batch:
    inputs: torch.Tensor  # [B, L] int64, left-padded
    targets: torch.Tensor  # [B, L] int64, 0 where there is nothing to predict
    weight: float = 1.0  # under DDP: world size x this shard's share of the global batch's targets

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.inputs.to(device, non_blocking=True), self.targets.to(device, non_blocking=True), self.weight)


def _left_padded(sequences: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the last `width` items of each sequence, right-aligned, and each row's length."""
    matrix = np.zeros((len(sequences), width), dtype=np.int64)
    lengths = np.zeros(len(sequences), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-width:] if width else seq[:0]
        lengths[row] = len(tail)
        if len(tail):
            matrix[row, width - len(tail) :] = tail
    return matrix, lengths


class SequenceBatcher:
    """objective "causal": input s[:-1], target s[1:]; "masked": random [MASK]s, targets only where masked."""

    def __init__(
        self,
        dataset: SequenceDataset,
        objective: str,
        max_len: int,
        batch_size: int,
        mask_prob: float = 0.2,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        if objective not in ("causal", "masked"):
            raise ValueError(f"objective: expected 'causal' or 'masked', got {objective!r}")
        if batch_size < 1:
            raise ConfigError(f"train.batch_size: must be at least 1, got {batch_size}")
        if max_len < 1:
            raise ConfigError(f"model.max_len: must be at least 1, got {max_len}")
        if objective == "masked" and not 0.0 < mask_prob <= 1.0:
            raise ConfigError(f"model.mask_prob: must be in (0, 1], got {mask_prob}")
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard: rank {rank} is not in 0..{world - 1}")
        if batch_size < world:
            raise ConfigError(
                f"train.batch_size: the global batch ({batch_size}) is smaller than the {world} processes"
            )
        self.objective, self.batch_size, self.mask_prob, self.shard = objective, batch_size, mask_prob, shard
        self.mask_token = dataset.num_items + 1
        self.rng = np.random.default_rng(seed)
        train = [np.asarray(dataset.train_sequence(u), dtype=np.int64) for u in range(dataset.num_users)]
        if objective == "causal":
            train = [s for s in train if len(s) >= 2]  # one item predicts nothing
            self.inputs, self.lengths = _left_padded([s[:-1] for s in train], max_len)
            self.targets, _ = _left_padded([s[1:] for s in train], max_len)
        else:
            train = [s for s in train if len(s) >= 1]
            self.inputs, self.lengths = _left_padded(train, max_len)
            self.targets = self.inputs
        if len(self.inputs) == 0:
            raise ValueError(f"{dataset.name}: no user has a training sequence long enough to train on")

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)

    def epoch(self) -> Iterator[Batch]:
        """One pass over all users in a fresh random order (and, for "masked", fresh masks)."""
        order = self.rng.permutation(len(self.inputs))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(self.lengths[rows].max())
            inputs = self.inputs[rows, -width:]
            targets = self.targets[rows, -width:]
            if self.objective == "masked":
                inputs, targets = self._mask(inputs, self.lengths[rows])
            if self.shard[1] > 1:
                yield self._my_rows(inputs, targets, self.lengths[rows])
                continue
            yield Batch(torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(np.ascontiguousarray(targets)))

    def _my_rows(self, inputs: np.ndarray, targets: np.ndarray, lengths: np.ndarray) -> Batch:
        """This rank's rows (rank, rank + W, ...) of a global batch drawn as one process draws it, weighted so
        that the mean of the ranks' weighted losses is the global batch's mean loss."""
        rank, world = self.shard
        total = int((targets != PAD).sum())
        mine = slice(rank, None, world)
        if len(inputs[mine]) == 0:
            # A last batch with fewer rows than ranks: a zero-weight copy of row 0 keeps this rank's step, and so
            # DDP's gradient all-reduce, in step with the others while adding nothing.
            mine, weight = slice(0, 1), 0.0
        else:
            weight = world * int((targets[mine] != PAD).sum()) / total
        width = int(lengths[mine].max())  # positions count from the right: trimming left padding changes nothing
        inputs, targets = inputs[mine, -width:], targets[mine, -width:]
        return Batch(
            torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(np.ascontiguousarray(targets)), weight
        )

    def _mask(self, items: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        real = items != PAD
        masked = (self.rng.random(items.shape) < self.mask_prob) & real
        # Every sequence gets at least one [MASK]: a random real position where none was drawn.
        none = ~masked.any(axis=1)
        if none.any():
            width = items.shape[1]
            offset = (self.rng.random(int(none.sum())) * lengths[none]).astype(np.int64)
            masked[np.flatnonzero(none), width - 1 - offset] = True
        inputs = np.where(masked, self.mask_token, items)
        targets = np.where(masked, items, PAD)
        return inputs, targets
