"""Bench use case: train a bench's missing cells (finished ones are reused) and write its results table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.events import EventSink, ignore_events

DEFAULT_OUT_DIR = Path("docs/results")


@dataclass
class BenchResult:
    name: str
    cells: int
    trained: int  # cells trained by this call; the rest were reused from the database
    missing: int  # cells without a finished run (listed in the table)
    complete: bool  # False: stopped before every cell was tried
    markdown: Path
    json: Path


def run_bench(
    config: Path | None,
    db: str | Path,
    command: str,
    out: Path | None = None,
    jobs: int = 1,
    overrides: dict[str, str | None] | None = None,
    flags: dict[str, Any] | None = None,
    table_only: bool = False,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    workspace: Path | None = None,
    db_label: str | None = None,
) -> BenchResult:
    """`command` is the command line written into the table's header, so the table says how to remake it;
    `db` the database (resolved in the workspace), `db_label` how the table names it (default `db`)."""
    from engine.bench import load_spec
    from engine.bench import run_bench as run
    from engine.bench.table import build_rows, describe_budget, write_results
    from engine.store import open_store

    spec = load_spec(config, overrides=overrides or {}, flags=flags or {})
    target = out if out is not None else DEFAULT_OUT_DIR / spec.name
    outcome = run(
        spec, db, on_event=on_event, should_stop=should_stop, jobs=jobs, table_only=table_only, workspace=workspace
    )
    label = db_label if db_label is not None else str(db)
    with open_store(db) as store:
        rows = build_rows(outcome, store)
        versions = [store.get_run(r.run_id).code_version for r in outcome.runs]
    budget = describe_budget([spec.config_for(r.cell, label) for r in outcome.runs])
    md, js = write_results(outcome, rows, target, command, label, versions, budget)
    return BenchResult(spec.name, len(outcome.runs), outcome.trained, len(outcome.missing), outcome.complete, md, js)
