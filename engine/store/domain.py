"""Plain, frozen values that the runs store returns: no ORM rows, no open sessions, safe to pickle.

Times are timezone-aware UTC datetimes. A metric value of NaN was stored as NULL (SQLite has no NaN).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class RunStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"


class RunNotFoundError(LookupError):
    """A run id that the store does not hold (or, for writes, holds as deleted)."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} not found in the runs database")
        self.run_id = run_id


class DatabaseNotFoundError(RunNotFoundError):
    """No runs database at the path a read-only command was given: none of its runs can be found (exit 4)."""

    def __init__(self, path: object, run_ids: tuple[int, ...] = ()) -> None:
        runs = f"run {', '.join(map(str, run_ids))} not found: " if run_ids else ""
        LookupError.__init__(self, f"{runs}no runs database at {path} (nothing has been recorded there; check --db)")
        self.run_id = run_ids[0] if run_ids else None
        self.path = path


@dataclass(frozen=True)
class RunSummary:
    """One line of a run listing."""

    id: int
    name: str
    status: RunStatus
    dataset: str
    method: str
    backbone: str
    device: str
    fusion: str | None  # param "knowledge.fusion", if the run recorded it
    prompt: str | None  # param "knowledge.prompt_hash", if the run recorded it
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None  # None while the run has not ended
    test_metrics: dict[str, float] = field(default_factory=dict)  # final "test/..." metrics (step None)
    deleted: bool = False
    labels: tuple[str, ...] = ()  # the researcher's tags (`kirec runs tag`), sorted; not RunDetail.tags
    note: str | None = None  # the researcher's note (`kirec runs note`)


@dataclass(frozen=True)
class Artifact:
    kind: str  # e.g. "checkpoint" (best weights), "training_state" (resumable), "embeddings", "log"
    path: str
    created_at: datetime
    sha256: str | None = None  # the file's hash when recorded; None for artifacts recorded without one


@dataclass(frozen=True)
class RunDetail:
    summary: RunSummary
    config: dict[str, Any]
    dataset_fingerprint: str
    code_version: str
    pid: int | None
    hostname: str | None
    error: str | None
    params: dict[str, str]
    tags: dict[str, str]
    artifacts: tuple[Artifact, ...]
    valid_metrics: dict[str, float]  # final "valid/..." metrics (step None)
    test_metrics: dict[str, float]  # final "test/..." metrics (step None), as in the summary

    @property
    def id(self) -> int:
        return self.summary.id


@dataclass(frozen=True)
class MetricPoint:
    step: int | None
    value: float
    timestamp: datetime


@dataclass(frozen=True)
class RunComparison:
    """Runs side by side; every tuple is aligned with `run_ids` (None where a run lacks the key)."""

    run_ids: tuple[int, ...]
    runs: tuple[RunDetail, ...]
    params: dict[str, tuple[str | None, ...]]  # every param any of the runs has
    differing_params: dict[str, tuple[str | None, ...]]  # the subset whose values are not all equal
    metrics: dict[str, tuple[float | None, ...]]  # final valid/ and test/ metrics
