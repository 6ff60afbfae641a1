"""The runs store: every run's config, params, metrics, artifacts and tags in one SQLite file (runs.db)."""

from engine.store.db import SCHEMA_VERSION, SchemaTooNewError, StoreBusyError, StoreError
from engine.store.domain import (
    Artifact,
    DatabaseNotFoundError,
    MetricPoint,
    RunComparison,
    RunDetail,
    RunNotFoundError,
    RunStatus,
    RunSummary,
)
from engine.store.queries import RunStore, current_code_version, flatten_params, open_store
from engine.store.recorder import StoreRecorder

__all__ = [
    "SCHEMA_VERSION",
    "Artifact",
    "DatabaseNotFoundError",
    "MetricPoint",
    "RunComparison",
    "RunDetail",
    "RunNotFoundError",
    "RunStatus",
    "RunStore",
    "RunSummary",
    "SchemaTooNewError",
    "StoreBusyError",
    "StoreError",
    "StoreRecorder",
    "current_code_version",
    "flatten_params",
    "open_store",
]
