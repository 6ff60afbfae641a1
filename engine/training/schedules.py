"""Learning-rate schedules: a multiplier of `train.lr` for each optimisation step, from the step's position alone.

A schedule is a pure function of (step, total steps, warmup steps), so a resumed run recomputes its learning rate
from the epoch it restarts at and keeps no scheduler state in its checkpoint. Every schedule warms up linearly over
`train.warmup_epochs` first (none by default).
"""

from __future__ import annotations

import math


def _warmup(step: int, warmup_steps: int) -> float | None:
    return (step + 1) / warmup_steps if step < warmup_steps else None


def constant(step: int, total_steps: int, warmup_steps: int) -> float:
    """`constant`: train.lr throughout (after any warm-up): the published SASRec recipe."""
    warm = _warmup(step, warmup_steps)
    return 1.0 if warm is None else warm


def cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """`cosine`: from train.lr down to 0 at the last step of train.epochs, along half a cosine. A run that is to
    converge in a fixed budget of epochs gets there in fewer of them than at a constant rate."""
    warm = _warmup(step, warmup_steps)
    if warm is not None:
        return warm
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
