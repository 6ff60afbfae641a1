"""Progress events: the one channel through which long work reports to the CLI, the store and the TUI.

Events are plain frozen dataclasses so that a front end can render them, a store can persist them and
a subprocess can pickle them, without any of them knowing about the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union


@dataclass(frozen=True)
class Status:
    """A human-readable stage change or log line ("loading data", "extracting 120/9000")."""

    message: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class RunStarted:
    run_id: int | None
    name: str
    device: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochStarted:
    epoch: int  # 1-based
    steps: int  # batches in this epoch


@dataclass(frozen=True)
class StepLoss:
    epoch: int
    step: int  # 1-based within the epoch
    steps: int
    loss: float


EPOCH_SECONDS = "time/epoch_seconds"  # the stored metric key of an epoch's seconds (EpochEnd)


@dataclass(frozen=True)
class EpochEnd:
    """One epoch trained and validated; the store records train_seconds + eval_seconds as EPOCH_SECONDS."""

    epoch: int
    train_loss: float
    valid: dict[str, float]
    train_seconds: float
    eval_seconds: float
    is_best: bool


@dataclass(frozen=True)
class DeviceStats:
    device: str  # "cpu" or "cuda:0 (NVIDIA H100 ...)"
    utilization: float | None  # percent, GPU or CPU
    memory_used_mb: float | None
    memory_total_mb: float | None


@dataclass(frozen=True)
class RunFinished:
    run_id: int | None
    status: str  # FINISHED | FAILED | INTERRUPTED
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    error: str | None = None


Event = Union[Status, RunStarted, EpochStarted, StepLoss, EpochEnd, DeviceStats, RunFinished]
EventSink = Callable[[Event], None]


def ignore_events(_event: Event) -> None:
    """Default sink for callers that do not care about progress."""


def fan_out(*sinks: EventSink) -> EventSink:
    """One sink that forwards every event to each of `sinks` in order."""

    def sink(event: Event) -> None:
        for s in sinks:
            s(event)

    return sink
