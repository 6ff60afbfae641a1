"""SQLModel table classes of runs.db: the storage layout, never handed to callers (see domain.py).

Timestamps are stored as REAL Unix seconds (UTC): compact, sortable, and durations are a subtraction.
Every child table points at `runs.id` with ON DELETE CASCADE (enforced because each connection turns
`foreign_keys` on, see db.py). Changing anything here needs a new migration step in db.py.
"""

from __future__ import annotations

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_started_at", "started_at"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_dataset", "dataset"),
        Index("ix_runs_method", "method"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str
    status: str  # RUNNING | FINISHED | FAILED | INTERRUPTED
    config_json: str  # the run's full configuration, JSON text
    dataset: str
    dataset_fingerprint: str
    backbone: str
    method: str
    code_version: str
    device: str
    started_at: float
    ended_at: float | None = None
    error: str | None = None
    # Added in schema version 2: which process writes the run (orphan detection) and soft delete.
    pid: int | None = None
    hostname: str | None = None
    deleted: bool = Field(default=False, sa_column_kwargs={"server_default": text("0")})
    # Added in schema version 4: the researcher's free-text note on the run (`kirec runs note`).
    note: str | None = None


class ParamRow(SQLModel, table=True):
    __tablename__ = "params"

    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE", primary_key=True)
    key: str = Field(primary_key=True)
    value: str


class MetricRow(SQLModel, table=True):
    __tablename__ = "metrics"
    __table_args__ = (
        # Serves metric_history (run, key, ordered steps) and the final metrics (run, key prefix, step NULL).
        Index("ix_metrics_run_key_step", "run_id", "key", "step"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    key: str
    step: int | None = None  # epoch for per-epoch metrics; NULL for a run's final metrics
    value: float | None = None  # NULL stands for NaN: SQLite cannot store NaN in a REAL column
    timestamp: float


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_run_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    kind: str
    path: str
    created_at: float
    sha256: str | None = None  # added in schema version 3: the file's hash when it was recorded


class TagRow(SQLModel, table=True):
    __tablename__ = "tags"

    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE", primary_key=True)
    key: str = Field(primary_key=True)
    value: str


class LabelRow(SQLModel, table=True):
    """A researcher's tag on a run (`kirec runs tag`), a single word; added in schema version 4.

    Not the key/value `tags` above, which the pipeline writes (host, best_epoch): a label is a name only, and a
    run has a set of them."""

    __tablename__ = "labels"

    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE", primary_key=True)
    label: str = Field(primary_key=True)


class ChangeCounterRow(SQLModel, table=True):
    """One row whose value every write transaction increments: `RunStore.last_change()` reads it."""

    __tablename__ = "change_counter"

    id: int = Field(default=1, primary_key=True)
    value: int = Field(default=0)
