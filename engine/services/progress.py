"""Progress of a long step that a front end shows as it goes: items done of a total, time per item, ETA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Progress:
    stage: str  # what is happening: "loading the text encoder", "embedding item texts", "loading run 3"
    done: int
    total: int
    elapsed: float  # seconds spent on the `done` units of this stage (a model load before them excluded)
    unit: str = "items"

    @property
    def per_unit(self) -> float | None:
        return self.elapsed / self.done if self.done else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far; None before the first unit is done."""
        per_unit = self.per_unit
        return None if per_unit is None else per_unit * (self.total - self.done)


ProgressSink = Callable[[Progress], None]


def ignore_progress(_progress: Progress) -> None:
    """Default sink for callers that show no progress."""
