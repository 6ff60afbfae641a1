"""Every query of the runs store, behind `RunStore`; callers get domain objects (domain.py), never ORM rows.

Metric key convention (written by the pipeline through recorder.StoreRecorder):
- per epoch, step = epoch (1-based): `train/loss` and validation metrics `valid/<metric>@<k>`, e.g. `valid/NDCG@10`;
- once per run, step = None ("final"): `valid/<metric>@<k>` of the best epoch and `test/<metric>@<k>`, e.g.
  `test/NDCG@10`. Logging a final key again replaces its value; per-epoch points accumulate.
Params are text: strings as they are, anything else as JSON (`0.001`, `true`, `[5, 10]`, `null`); nested
mappings are flattened to dotted keys (`{"knowledge": {"fusion": "gate"}}` -> `knowledge.fusion`).

Every public method runs in its own short transaction (reads: one snapshot; writes: BEGIN IMMEDIATE) so
that many writer processes and a polling TUI can share one file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import psutil
from sqlalchemy import ColumnElement, Engine, delete, func, insert, or_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

import engine as engine_package
from engine.dotted import flatten_dotted as flatten_params  # one flattening for config, params and store
from engine.store.db import BUSY_TIMEOUT_SECONDS, StoreBusyError, open_database, write_engine
from engine.store.domain import (
    Artifact,
    MetricPoint,
    RunComparison,
    RunDetail,
    RunNotFoundError,
    RunStatus,
    RunSummary,
)
from engine.store.tables import ArtifactRow, ChangeCounterRow, LabelRow, MetricRow, ParamRow, RunRow, TagRow

FUSION_PARAM = "knowledge.fusion"
PROMPT_PARAM = "knowledge.prompt_hash"
TEST_PREFIX = "test/"
VALID_PREFIX = "valid/"
ORDER_COLUMNS = ("id", "name", "status", "dataset", "method", "backbone", "started_at", "ended_at", "duration")
MAX_LABEL_LENGTH = 64
# Ids per IN (...) list: far below SQLite's variable limit, large enough that 10,000 runs take a few statements.
_ID_CHUNK = 900


class RunStore:
    """The runs database at `path`, opened (and migrated) on construction; see `open_database` for the flags."""

    def __init__(self, path: str | Path, create: bool = True, require_writable: bool = False) -> None:
        self.path = Path(path)
        self._engine = open_database(self.path, create=create, require_writable=require_writable)
        self._writer = write_engine(self._engine)
        self._owner_pid = os.getpid()
        self._hostname = socket.gethostname()
        self._code_version: str | None = None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for diagnostics such as statement counting); writes go through RunStore."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------------------------

    def create_run(
        self,
        name: str,
        config: Mapping[str, Any],
        dataset: str,
        dataset_fingerprint: str,
        backbone: str,
        method: str,
        device: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        code_version: str | None = None,
    ) -> int:
        """Record a RUNNING run written by this process; `code_version` None means engine version + git hash."""
        row = {
            "name": name,
            "status": RunStatus.RUNNING.value,
            "config_json": json.dumps(config, sort_keys=True, default=str),
            "dataset": dataset,
            "dataset_fingerprint": dataset_fingerprint,
            "backbone": backbone,
            "method": method,
            "code_version": code_version if code_version is not None else self.code_version(),
            "device": device,
            "started_at": time.time(),
            "pid": os.getpid(),
            "hostname": self._hostname,
            "deleted": False,
        }
        param_rows = [{"key": k, "value": _param_text(v)} for k, v in flatten_params(params).items()]
        with self._write() as session:
            run_id = int(session.execute(insert(RunRow).values(**row)).inserted_primary_key[0])
            if param_rows:
                session.execute(insert(ParamRow), [{"run_id": run_id, **p} for p in param_rows])
            if tags:
                session.execute(insert(TagRow), [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()])
        return run_id

    def log_metrics(self, run_id: int, metrics: Mapping[str, float], step: int | None) -> None:
        """Append one point per key at `step`; step None records (or replaces) the run's final values."""
        if not metrics:
            return
        now = time.time()
        rows = [
            {"run_id": run_id, "key": key, "step": step, "value": _storable(value), "timestamp": now}
            for key, value in metrics.items()
        ]
        with self._write() as session:
            self._require_run(session, run_id)
            if step is None:
                session.execute(
                    delete(MetricRow).where(
                        MetricRow.run_id == run_id, MetricRow.step.is_(None), MetricRow.key.in_(list(metrics))
                    )
                )
            session.execute(insert(MetricRow), rows)

    def log_artifact(self, run_id: int, kind: str, path: str | Path, sha256: str | None = None) -> None:
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(
                insert(ArtifactRow).values(
                    run_id=run_id, kind=kind, path=str(path), created_at=time.time(), sha256=sha256
                )
            )

    def set_artifact(
        self, run_id: int, kind: str, path: str | Path, sha256: str | None, tags: Mapping[str, str] | None = None
    ) -> None:
        """Make `path` the run's only artifact of `kind` (a newer checkpoint replaces the row of the older one),
        together with `tags`, in one transaction."""
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(delete(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.kind == kind))
            session.execute(
                insert(ArtifactRow).values(
                    run_id=run_id, kind=kind, path=str(path), created_at=time.time(), sha256=sha256
                )
            )
            if tags:
                upsert = sqlite_insert(TagRow)
                session.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["run_id", "key"], set_={"value": upsert.excluded.value}
                    ),
                    [{"run_id": run_id, "key": k, "value": str(v)} for k, v in tags.items()],
                )

    def drop_artifact(self, run_id: int, kind: str) -> None:
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(delete(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.kind == kind))

    def reopen_run(self, run_id: int, after_step: int) -> None:
        """A resumed run: RUNNING again, written by this process, without the per-epoch metrics of epochs after
        `after_step` (their state was not saved, so they are trained and recorded again) or any final metrics."""
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(
                    status=RunStatus.RUNNING.value, ended_at=None, error=None, pid=os.getpid(), hostname=self._hostname
                )
            )
            session.execute(
                delete(MetricRow).where(
                    MetricRow.run_id == run_id, or_(MetricRow.step.is_(None), MetricRow.step > after_step)
                )
            )

    def set_tags(self, run_id: int, tags: Mapping[str, str | None]) -> None:
        """Add or replace tags; a value of None removes that tag."""
        with self._write() as session:
            self._require_run(session, run_id)
            removed = [k for k, v in tags.items() if v is None]
            if removed:
                session.execute(delete(TagRow).where(TagRow.run_id == run_id, TagRow.key.in_(removed)))
            kept = [{"run_id": run_id, "key": k, "value": str(v)} for k, v in tags.items() if v is not None]
            if kept:
                upsert = sqlite_insert(TagRow)
                session.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["run_id", "key"], set_={"value": upsert.excluded.value}
                    ),
                    kept,
                )

    def finish_run(self, run_id: int, status: RunStatus | str, error: str | None = None) -> None:
        final = _final_status(status)
        with self._write() as session:
            result = session.execute(
                update(RunRow).where(RunRow.id == run_id).values(status=final.value, ended_at=time.time(), error=error)
            )
            if result.rowcount == 0:
                raise RunNotFoundError(run_id)

    def soft_delete(self, run_id: int) -> None:
        """Hide the run from listings; its rows stay (get_run still finds it, with deleted=True)."""
        self._set_deleted(run_id, True)

    def restore(self, run_id: int) -> None:
        """Undo `soft_delete`: the run is listed again (restoring a run that is not deleted changes nothing)."""
        self._set_deleted(run_id, False)

    def _set_deleted(self, run_id: int, deleted: bool) -> None:
        with self._write() as session:
            result = session.execute(update(RunRow).where(RunRow.id == run_id).values(deleted=deleted))
            if result.rowcount == 0:
                raise RunNotFoundError(run_id)

    def set_labels(self, run_id: int, labels: Iterable[str]) -> None:
        """Make `labels` the run's tags (a researcher's single-word tags, not the key/value `set_tags`)."""
        wanted = checked_labels(labels)
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(delete(LabelRow).where(LabelRow.run_id == run_id))
            if wanted:
                session.execute(insert(LabelRow), [{"run_id": run_id, "label": label} for label in wanted])

    def add_labels(self, run_id: int, labels: Iterable[str]) -> None:
        added = checked_labels(labels)
        with self._write() as session:
            self._require_run(session, run_id)
            if added:
                session.execute(
                    sqlite_insert(LabelRow).on_conflict_do_nothing(),
                    [{"run_id": run_id, "label": label} for label in added],
                )

    def remove_labels(self, run_id: int, labels: Iterable[str]) -> None:
        removed = checked_labels(labels)
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(delete(LabelRow).where(LabelRow.run_id == run_id, LabelRow.label.in_(removed)))

    def set_note(self, run_id: int, note: str | None) -> None:
        """The run's free-text note; None or blank text removes it."""
        text = None if note is None or not note.strip() else note.strip()
        with self._write() as session:
            result = session.execute(update(RunRow).where(RunRow.id == run_id).values(note=text))
            if result.rowcount == 0:
                raise RunNotFoundError(run_id)

    def mark_orphans(self) -> list[int]:
        """Mark INTERRUPTED the RUNNING runs written from this host by a process that no longer exists.

        Commands that read runs call this first (open_store(..., repair_orphans=True)), so none of them shows a
        killed run as RUNNING forever. A database this process may not write is left as it is.
        """
        try:
            return self._mark_orphans()
        except OperationalError as exc:
            if "readonly" in str(exc.orig) or "read-only" in str(exc.orig):
                return []
            raise

    def _mark_orphans(self) -> list[int]:
        with self._read() as session:
            running = session.exec(
                select(RunRow.id, RunRow.pid, RunRow.started_at).where(
                    RunRow.status == RunStatus.RUNNING.value, RunRow.hostname == self._hostname, RunRow.pid.is_not(None)
                )
            ).all()
        orphans = [(run_id, pid) for run_id, pid, started_at in running if not _writer_alive(pid, started_at)]
        if not orphans:
            return []
        marked = []
        with self._write() as session:
            for run_id, pid in orphans:
                last_heard = session.exec(select(func.max(MetricRow.timestamp)).where(MetricRow.run_id == run_id)).one()
                result = session.execute(
                    update(RunRow)
                    .where(RunRow.id == run_id, RunRow.status == RunStatus.RUNNING.value)  # it may have finished since
                    .values(
                        status=RunStatus.INTERRUPTED.value,
                        ended_at=func.coalesce(last_heard, RunRow.started_at),
                        error=f"process {pid} on {self._hostname} ended without finishing the run",
                    )
                )
                if result.rowcount:
                    marked.append(run_id)
        return marked

    # -- reads ----------------------------------------------------------------------------------------------

    def list_runs(
        self,
        status: RunStatus | str | None = None,
        dataset: str | None = None,
        method: str | None = None,
        text: str | None = None,
        include_deleted: bool = False,
        order_by: str = "started_at",
        descending: bool = True,
        limit: int | None = None,
        label: str | None = None,
    ) -> list[RunSummary]:
        """Runs matching every given filter, in two statements whatever their number.

        `text` matches name, dataset, method, backbone, a tag value, a label or the note (case-insensitive
        substring); `label` keeps the runs that carry exactly that label.
        `order_by` is one of ORDER_COLUMNS or a final metric key such as "test/NDCG@10"; missing values sort last.
        """
        filters = _run_filters(status, dataset, method, text, include_deleted, label)
        order = _order_clauses(order_by, descending)
        listing = (
            select(
                RunRow.id,
                RunRow.name,
                RunRow.status,
                RunRow.dataset,
                RunRow.method,
                RunRow.backbone,
                RunRow.device,
                RunRow.started_at,
                RunRow.ended_at,
                RunRow.deleted,
                RunRow.note,
                # labels hold no spaces (checked_labels), so one space-joined text per run keeps this one statement
                select(func.group_concat(LabelRow.label, " "))
                .where(LabelRow.run_id == RunRow.id)
                .scalar_subquery()
                .label("labels"),
                _param_subquery(FUSION_PARAM).label("fusion"),
                _param_subquery(PROMPT_PARAM).label("prompt"),
            )
            .where(*filters)
            .order_by(*order)
            .limit(limit)
        )
        listed_ids = select(RunRow.id).where(*filters)
        if limit is not None:
            listed_ids = listed_ids.order_by(*order).limit(limit)
        with self._read() as session:  # one snapshot for both statements
            # Core execution: the ORM's row processing would cost more than SQLite itself on 10,000 runs.
            rows = session.connection().execute(listing).all()
            tests = _final_metrics_by_run(session, MetricRow.run_id.in_(listed_ids.scalar_subquery()), TEST_PREFIX)
        return [
            RunSummary(
                id=r.id,
                name=r.name,
                status=RunStatus(r.status),
                dataset=r.dataset,
                method=r.method,
                backbone=r.backbone,
                device=r.device,
                fusion=r.fusion,
                prompt=r.prompt,
                started_at=_utc(r.started_at),
                ended_at=_utc_or_none(r.ended_at),
                duration_seconds=None if r.ended_at is None else r.ended_at - r.started_at,
                test_metrics=tests.get(r.id, {}),
                deleted=bool(r.deleted),
                labels=tuple(sorted(r.labels.split())) if r.labels else (),
                note=r.note,
            )
            for r in rows
        ]

    def get_run(self, run_id: int) -> RunDetail:
        with self._read() as session:
            details = _load_details(session, [run_id])
        if run_id not in details:
            raise RunNotFoundError(run_id)
        return details[run_id]

    def metric_history(self, run_id: int, key: str) -> list[MetricPoint]:
        """The per-step points of `key`, by step; the final (step None) value is in get_run instead."""
        with self._read() as session:
            self._require_run(session, run_id)
            rows = session.exec(
                select(MetricRow.step, MetricRow.value, MetricRow.timestamp)
                .where(MetricRow.run_id == run_id, MetricRow.key == key, MetricRow.step.is_not(None))
                .order_by(MetricRow.step, MetricRow.id)
            ).all()
        return [MetricPoint(step=step, value=_loaded(value), timestamp=_utc(ts)) for step, value, ts in rows]

    def metric_series(self, ids: Sequence[int]) -> dict[int, dict[str, list[MetricPoint]]]:
        """Every per-step series of each run in `ids` (key -> its points by step), in one read: the keys need not
        be known in advance. Runs without per-step points (or not in the store) are absent."""
        found: dict[int, dict[str, list[MetricPoint]]] = defaultdict(lambda: defaultdict(list))
        with self._read() as session:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                rows = session.connection().execute(
                    select(MetricRow.run_id, MetricRow.key, MetricRow.step, MetricRow.value, MetricRow.timestamp)
                    .where(MetricRow.run_id.in_(chunk), MetricRow.step.is_not(None))
                    .order_by(MetricRow.run_id, MetricRow.key, MetricRow.step, MetricRow.id)
                )
                for run_id, key, step, value, ts in rows:
                    found[run_id][key].append(MetricPoint(step=step, value=_loaded(value), timestamp=_utc(ts)))
        return {run_id: dict(series) for run_id, series in found.items()}

    def final_metrics(self, ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """Every final (step None) metric of each run in `ids`, whatever its prefix (valid/, test/, info/ ...)."""
        found: dict[int, dict[str, float]] = defaultdict(dict)
        with self._read() as session:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                rows = session.connection().execute(
                    select(MetricRow.run_id, MetricRow.key, MetricRow.value)
                    .where(MetricRow.run_id.in_(chunk), MetricRow.step.is_(None))
                    .order_by(MetricRow.run_id, MetricRow.key)
                )
                for run_id, key, value in rows:
                    found[run_id][key] = _loaded(value)
        return dict(found)

    def compare_runs(self, ids: Sequence[int]) -> RunComparison:
        run_ids = tuple(dict.fromkeys(ids))  # keep the caller's order, drop repeats
        if not run_ids:
            raise ValueError("compare_runs needs at least one run id")
        with self._read() as session:
            details = _load_details(session, run_ids)
        missing = [i for i in run_ids if i not in details]
        if missing:
            raise RunNotFoundError(missing[0])
        runs = tuple(details[i] for i in run_ids)
        params = {
            key: tuple(run.params.get(key) for run in runs) for key in sorted({k for run in runs for k in run.params})
        }
        metric_keys = sorted({k for run in runs for k in (*run.valid_metrics, *run.test_metrics)})
        metrics = {key: tuple(_final_metric(run, key) for run in runs) for key in metric_keys}
        return RunComparison(
            run_ids=run_ids,
            runs=runs,
            params=params,
            differing_params={k: v for k, v in params.items() if len(set(v)) > 1},
            metrics=metrics,
        )

    def export_runs(
        self, ids: Sequence[int] | None = None, fmt: Literal["csv", "json"] = "csv", curves: bool = False
    ) -> str:
        """CSV (one row per run: summary, final metrics, `param.<key>` columns) or a JSON list of full runs.

        `ids` None exports every run that is not deleted. `curves` (JSON only) adds each run's per-epoch points,
        `"curves": {"valid/NDCG@10": [{"step": 1, "value": 0.02}, ...], ...}`.
        """
        if fmt not in ("csv", "json"):
            raise ValueError(f"export format must be 'csv' or 'json', got {fmt!r}")
        if curves and fmt != "json":
            raise ValueError("the per-epoch curves are exported as JSON only: use the json format")
        with self._read() as session:
            if ids is None:
                run_ids: tuple[int, ...] = tuple(
                    session.exec(select(RunRow.id).where(RunRow.deleted.is_(False)).order_by(RunRow.id)).all()
                )
            else:
                run_ids = tuple(dict.fromkeys(ids))
            details = _load_details(session, run_ids)
            points: dict[int, dict[str, list[dict[str, Any]]]] = {}
            if curves:
                for chunk in _chunks(run_ids):
                    points.update(_curves_by_run(session, MetricRow.run_id.in_(chunk)))
        missing = [i for i in run_ids if i not in details]
        if missing:
            raise RunNotFoundError(missing[0])
        runs = [details[i] for i in run_ids]
        if fmt == "csv":
            return _to_csv(runs)
        return _to_json(runs, {i: points.get(i, {}) for i in run_ids} if curves else None)

    def last_change(self) -> int:
        """A counter that grows with every committed write: poll it and reload only when it moved."""
        with self._read() as session:
            return int(session.exec(select(ChangeCounterRow.value)).one())

    def code_version(self) -> str:
        if self._code_version is None:
            self._code_version = current_code_version()
        return self._code_version

    # -- plumbing -------------------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        self._forget_inherited_connections()
        with self._busy_as_store_error(), Session(self._engine) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        self._forget_inherited_connections()
        with self._busy_as_store_error(), Session(self._writer) as session, session.begin():
            yield session
            session.execute(update(ChangeCounterRow).values(value=ChangeCounterRow.value + 1))

    def _forget_inherited_connections(self) -> None:
        # A forked child must not use its parent's pooled SQLite connections (SQLAlchemy's pooling guidance).
        if os.getpid() != self._owner_pid:
            self._engine.dispose(close=False)
            self._owner_pid = os.getpid()

    @contextmanager
    def _busy_as_store_error(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            if "locked" in str(exc.orig) or "busy" in str(exc.orig):
                raise StoreBusyError(
                    f"{self.path}: the database stayed locked by another process past the "
                    f"{BUSY_TIMEOUT_SECONDS:g} s busy timeout; try again"
                ) from None
            raise

    @staticmethod
    def _require_run(session: Session, run_id: int) -> None:
        if session.exec(select(RunRow.id).where(RunRow.id == run_id)).first() is None:
            raise RunNotFoundError(run_id)


def open_store(
    path: str | Path, create: bool = True, require_writable: bool = False, repair_orphans: bool = False
) -> RunStore:
    """The runs store at `path`. Read-only commands pass create=False (a missing database is an error, not a new
    empty file) and repair_orphans=True (a run whose writer died reads as INTERRUPTED, not RUNNING)."""
    store = RunStore(path, create=create, require_writable=require_writable)
    if repair_orphans:
        store.mark_orphans()
    return store


def current_code_version() -> str:
    """`engine.__version__`, plus `+g<short hash>` (and `.dirty`) when the engine sits in a git checkout."""
    version = engine_package.__version__
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7", "--exclude=*"],
            cwd=Path(engine_package.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return version
    described_hash = described.stdout.strip()
    if described.returncode != 0 or not described_hash:
        return version
    return f"{version}+g{described_hash.replace('-dirty', '.dirty')}"


# -- query helpers ------------------------------------------------------------------------------------------


def _run_filters(
    status: RunStatus | str | None,
    dataset: str | None,
    method: str | None,
    text: str | None,
    include_deleted: bool,
    label: str | None = None,
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if not include_deleted:
        filters.append(RunRow.deleted.is_(False))
    if status is not None:
        filters.append(RunRow.status == _status(status).value)
    if dataset is not None:
        filters.append(RunRow.dataset == dataset)
    if method is not None:
        filters.append(RunRow.method == method)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        tag_match = select(TagRow.run_id).where(TagRow.run_id == RunRow.id, TagRow.value.like(pattern, escape="\\"))
        label_match = select(LabelRow.run_id).where(
            LabelRow.run_id == RunRow.id, LabelRow.label.like(pattern, escape="\\")
        )
        filters.append(
            or_(
                *(
                    col.like(pattern, escape="\\")
                    for col in (RunRow.name, RunRow.dataset, RunRow.method, RunRow.backbone, RunRow.note)
                ),
                tag_match.exists(),
                label_match.exists(),
            )
        )
    if label is not None:
        filters.append(select(LabelRow.run_id).where(LabelRow.run_id == RunRow.id, LabelRow.label == label).exists())
    return filters


def _order_clauses(order_by: str, descending: bool) -> list[Any]:
    if order_by == "duration":
        key: Any = RunRow.ended_at - RunRow.started_at
    elif order_by in ORDER_COLUMNS:
        key = getattr(RunRow, order_by)
    elif order_by.startswith((TEST_PREFIX, VALID_PREFIX)):
        key = (
            select(MetricRow.value)
            .where(MetricRow.run_id == RunRow.id, MetricRow.key == order_by, MetricRow.step.is_(None))
            .limit(1)
            .scalar_subquery()
        )
    else:
        raise ValueError(
            f"cannot order runs by {order_by!r}: use one of {', '.join(ORDER_COLUMNS)} or a final metric key like 'test/NDCG@10'"
        )
    tie_break = RunRow.id.desc() if descending else RunRow.id.asc()
    return [(key.desc() if descending else key.asc()).nulls_last(), tie_break]


def _param_subquery(key: str) -> Any:
    return select(ParamRow.value).where(ParamRow.run_id == RunRow.id, ParamRow.key == key).scalar_subquery()


def _key_prefix(prefix: str) -> ColumnElement[bool]:
    # A range instead of LIKE: index-friendly and case-sensitive ("/" + 1 == "0").
    return (MetricRow.key >= prefix) & (MetricRow.key < prefix[:-1] + chr(ord(prefix[-1]) + 1))


def _final_metrics_by_run(session: Session, runs: ColumnElement[bool], prefix: str) -> dict[int, dict[str, float]]:
    rows = session.connection().execute(
        select(MetricRow.run_id, MetricRow.key, MetricRow.value)
        .where(runs, MetricRow.step.is_(None), _key_prefix(prefix))
        .order_by(MetricRow.run_id, MetricRow.key)
    )
    found: dict[int, dict[str, float]] = defaultdict(dict)
    for run_id, key, value in rows:
        found[run_id][key] = _loaded(value)
    return found


def _labels_by_run(session: Session, runs: ColumnElement[bool]) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = defaultdict(list)
    for run_id, label in session.connection().execute(
        select(LabelRow.run_id, LabelRow.label).where(runs).order_by(LabelRow.run_id, LabelRow.label)
    ):
        found[run_id].append(label)
    return {run_id: tuple(labels) for run_id, labels in found.items()}


def _curves_by_run(session: Session, runs: ColumnElement[bool]) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """Every per-epoch point (step not None) of the runs, by run and key, in step order."""
    found: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run_id, key, step, value in session.connection().execute(
        select(MetricRow.run_id, MetricRow.key, MetricRow.step, MetricRow.value)
        .where(runs, MetricRow.step.is_not(None))
        .order_by(MetricRow.run_id, MetricRow.key, MetricRow.step, MetricRow.id)
    ):
        finite = value is not None and math.isfinite(value)
        found[run_id][key].append({"step": step, "value": value if finite else None})  # strict JSON has no NaN
    return {run_id: dict(curves) for run_id, curves in found.items()}


def checked_labels(labels: Iterable[str]) -> list[str]:
    """The labels, stripped and without repeats; ValueError (one line) for an empty one or one with a space or a
    comma (a label is one word, so that a listing can join them with spaces and a prompt split them again)."""
    checked: list[str] = []
    for raw in labels:
        label = raw.strip()
        if not label or any(c.isspace() or c == "," for c in label):
            raise ValueError(f"tag {raw!r} must be one word: no spaces or commas")
        if len(label) > MAX_LABEL_LENGTH:
            raise ValueError(f"tag {label[:20]!r}… is longer than {MAX_LABEL_LENGTH} characters")
        if label not in checked:
            checked.append(label)
    return checked


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _ID_CHUNK):
        yield list(ids[start : start + _ID_CHUNK])


def _load_details(session: Session, ids: Sequence[int]) -> dict[int, RunDetail]:
    """Full details of `ids` (those that exist) in six statements per chunk of ids, never one per run."""
    details: dict[int, RunDetail] = {}
    for chunk in _chunks(ids):
        runs = session.exec(select(RunRow).where(RunRow.id.in_(chunk))).all()
        params: dict[int, dict[str, str]] = defaultdict(dict)
        for run_id, key, value in session.exec(
            select(ParamRow.run_id, ParamRow.key, ParamRow.value)
            .where(ParamRow.run_id.in_(chunk))
            .order_by(ParamRow.key)
        ):
            params[run_id][key] = value
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        for run_id, key, value in session.exec(
            select(TagRow.run_id, TagRow.key, TagRow.value).where(TagRow.run_id.in_(chunk)).order_by(TagRow.key)
        ):
            tags[run_id][key] = value
        artifacts: dict[int, list[Artifact]] = defaultdict(list)
        for run_id, kind, path, created_at, sha256 in session.exec(
            select(ArtifactRow.run_id, ArtifactRow.kind, ArtifactRow.path, ArtifactRow.created_at, ArtifactRow.sha256)
            .where(ArtifactRow.run_id.in_(chunk))
            .order_by(ArtifactRow.id)
        ):
            artifacts[run_id].append(Artifact(kind=kind, path=path, created_at=_utc(created_at), sha256=sha256))
        in_chunk = MetricRow.run_id.in_(chunk)
        valid = _final_metrics_by_run(session, in_chunk, VALID_PREFIX)
        test = _final_metrics_by_run(session, in_chunk, TEST_PREFIX)
        labels = _labels_by_run(session, LabelRow.run_id.in_(chunk))
        for run in runs:
            assert run.id is not None
            run_params = params.get(run.id, {})
            summary = RunSummary(
                id=run.id,
                name=run.name,
                status=RunStatus(run.status),
                dataset=run.dataset,
                method=run.method,
                backbone=run.backbone,
                device=run.device,
                fusion=run_params.get(FUSION_PARAM),
                prompt=run_params.get(PROMPT_PARAM),
                started_at=_utc(run.started_at),
                ended_at=_utc_or_none(run.ended_at),
                duration_seconds=None if run.ended_at is None else run.ended_at - run.started_at,
                test_metrics=test.get(run.id, {}),
                deleted=bool(run.deleted),
                labels=labels.get(run.id, ()),
                note=run.note,
            )
            details[run.id] = RunDetail(
                summary=summary,
                config=json.loads(run.config_json),
                dataset_fingerprint=run.dataset_fingerprint,
                code_version=run.code_version,
                pid=run.pid,
                hostname=run.hostname,
                error=run.error,
                params=run_params,
                tags=tags.get(run.id, {}),
                artifacts=tuple(artifacts.get(run.id, ())),
                valid_metrics=valid.get(run.id, {}),
                test_metrics=test.get(run.id, {}),
            )
    return details


# -- export -------------------------------------------------------------------------------------------------

_CSV_COLUMNS = (
    "id",
    "name",
    "status",
    "dataset",
    "method",
    "backbone",
    "fusion",
    "prompt",
    "device",
    "code_version",
    "started_at",
    "ended_at",
    "duration_seconds",
    "error",
    "deleted",
    "labels",
    "note",
)


def _summary_fields(run: RunDetail) -> dict[str, Any]:
    s = run.summary
    return {
        "id": s.id,
        "name": s.name,
        "status": s.status.value,
        "dataset": s.dataset,
        "method": s.method,
        "backbone": s.backbone,
        "fusion": s.fusion,
        "prompt": s.prompt,
        "device": s.device,
        "code_version": run.code_version,
        "started_at": s.started_at.isoformat(),
        "ended_at": s.ended_at.isoformat() if s.ended_at else None,
        "duration_seconds": s.duration_seconds,
        "error": run.error,
        "deleted": s.deleted,
        "labels": list(s.labels),
        "note": s.note,
    }


def _to_csv(runs: Sequence[RunDetail]) -> str:
    metric_keys = sorted({k for run in runs for k in (*run.valid_metrics, *run.test_metrics)})
    param_keys = sorted({k for run in runs for k in run.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*_CSV_COLUMNS, *metric_keys, *(f"param.{k}" for k in param_keys)])
    for run in runs:
        fields = _summary_fields(run)
        writer.writerow(
            [
                *(_csv_cell(fields[c]) for c in _CSV_COLUMNS),
                *("" if (v := _final_metric(run, k)) is None else repr(v) for k in metric_keys),
                *(run.params.get(k, "") for k in param_keys),
            ]
        )
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return " ".join(value) if isinstance(value, list) else value  # labels: one word each


def _to_json(runs: Sequence[RunDetail], curves: Mapping[int, Mapping[str, Any]] | None = None) -> str:
    def finite_or_none(metrics: Mapping[str, float]) -> dict[str, float | None]:
        return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}  # strict JSON has no NaN

    documents = [
        {
            **_summary_fields(run),
            "dataset_fingerprint": run.dataset_fingerprint,
            "pid": run.pid,
            "hostname": run.hostname,
            "config": run.config,
            "params": run.params,
            "tags": run.tags,
            "artifacts": [
                {"kind": a.kind, "path": a.path, "created_at": a.created_at.isoformat(), "sha256": a.sha256}
                for a in run.artifacts
            ],
            "metrics": {"valid": finite_or_none(run.valid_metrics), "test": finite_or_none(run.test_metrics)},
            **({} if curves is None else {"curves": curves[run.id]}),
        }
        for run in runs
    ]
    return json.dumps(documents, indent=2, allow_nan=False)


# -- small conversions --------------------------------------------------------------------------------------


def _final_metric(run: RunDetail, key: str) -> float | None:
    return run.test_metrics.get(key, run.valid_metrics.get(key))


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _storable(value: float) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _loaded(value: float | None) -> float:
    return math.nan if value is None else value


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def _utc_or_none(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else _utc(timestamp)


def _status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(status)
    except ValueError:
        raise ValueError(f"unknown run status {status!r}: use one of {', '.join(s.value for s in RunStatus)}") from None


def _final_status(status: RunStatus | str) -> RunStatus:
    final = _status(status)
    if final is RunStatus.RUNNING:
        raise ValueError("finish_run needs a final status (FINISHED, FAILED or INTERRUPTED), got RUNNING")
    return final


def _writer_alive(pid: int, started_at: float) -> bool:
    """Whether the process that started a run still runs (a reused pid started after the run does not count)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= started_at + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
