"""Bench use case: train a bench's missing cells (finished ones are reused) and write its results table."""

from __future__ import annotations

import dataclasses
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
    markdown: Path | None  # None: nothing written (a --table-only read that misses cells)
    json: Path | None
    target: Path  # the results path without suffix


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
    if table_only and outcome.missing:
        # Recomputing a table must not replace a complete one with a table of holes (a wrong --db, a cleaned
        # workspace): a training bench lists its missing cells, a read of runs that are not there writes nothing.
        return BenchResult(spec.name, len(outcome.runs), 0, len(outcome.missing), outcome.complete, None, None, target)
    label = db_label if db_label is not None else str(db)
    with open_store(db) as store:
        rows = build_rows(outcome, store)
        versions = [store.get_run(r.run_id).code_version for r in outcome.runs]
    budget = describe_budget([spec.config_for(r.cell, label) for r in outcome.runs])
    md, js = write_results(outcome, rows, target, command, label, versions, budget)
    return BenchResult(
        spec.name, len(outcome.runs), outcome.trained, len(outcome.missing), outcome.complete, md, js, target
    )


# -- reading results tables (the workbench's Bench view) ----------------------------------------------------------

BENCH_METRICS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")  # engine.bench.table.METRICS, as the JSON stores them
GAIN_METRIC = "NDCG@10"  # the metric of the gain column and of the paired test (engine.bench.table.TEST_METRIC)


class BenchResultsError(ValueError):
    """A results file that cannot be read as a `kirec bench` table; the message is one line naming the file."""


@dataclass(frozen=True)
class MeanStdValue:
    mean: float
    std: float


@dataclass(frozen=True)
class BenchCell:
    """One row of a results table: a (protocol, dataset, backbone, method) cell over its seeds' runs."""

    protocol: str  # full | sampled
    dataset: str
    backbone: str
    method: str
    is_baseline: bool
    seeds: tuple[int, ...]
    run_ids: tuple[int, ...]
    metrics: dict[str, MeanStdValue | None]  # BENCH_METRICS, test split, mean ± std over seeds
    gain: dict[str, float | None]  # relative to the baseline of the same backbone and dataset (empty: none)
    p_value: float | None  # paired Wilcoxon over users of per-user NDCG@10 against that baseline
    setting: dict[str, Any]
    runs_in_store: bool | None = None  # every run id is in the store and is of this dataset and backbone


@dataclass(frozen=True)
class BenchTable:
    """A `kirec bench` results table as its JSON file holds it: every number was computed by engine.bench.table."""

    path: Path
    name: str
    command: str
    generated_at: str
    database: str
    baseline: str | None
    complete: bool
    budget: str
    cells: tuple[BenchCell, ...]


def find_bench_results(folder: str | Path) -> list[Path]:
    """The `kirec bench` JSON results files in `folder`, by name (other JSON files are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchResultsError(f"{folder}: no such folder")
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            read_bench_results(path)
        except BenchResultsError:
            continue
        found.append(path)
    return found


def read_bench_results(path: str | Path, store: Any = None) -> BenchTable:
    """The table in a results JSON file that `kirec bench` wrote. With `store` (a RunStore), each cell says
    whether its runs are there (a table made from another database names run ids this one does not hold)."""
    import json

    path = Path(path)
    try:
        document = json.loads(path.read_text())
        rows = document["rows"]
        cells = tuple(_cell(row) for row in rows)
        table = BenchTable(
            path=path,
            name=str(document["bench"]),
            command=str(document.get("command", "")),
            generated_at=str(document.get("generated_at", "")),
            database=str(document.get("database", "")),
            baseline=document.get("baseline"),
            complete=bool(document.get("complete", True)),
            budget=str(document.get("budget", "")),
            cells=cells,
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchResultsError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise BenchResultsError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BenchResultsError(f"{path}: not a kirec bench results file ({exc.__class__.__name__}: {exc})") from None
    if store is None:
        return table
    return dataclasses.replace(table, cells=tuple(_with_store_check(c, store) for c in table.cells))


def _cell(row: dict[str, Any]) -> BenchCell:
    def mean_std(value: Any) -> MeanStdValue | None:
        return None if value is None else MeanStdValue(float(value["mean"]), float(value["std"]))

    test = row.get("wilcoxon")
    return BenchCell(
        protocol=str(row["protocol"]),
        dataset=str(row["dataset"]),
        backbone=str(row["backbone"]),
        method=str(row["method"]),
        is_baseline=bool(row["baseline"]),
        seeds=tuple(int(s) for s in row["seeds"]),
        run_ids=tuple(int(r) for r in row["run_ids"]),
        metrics={m: mean_std(row["test"].get(m)) for m in BENCH_METRICS},
        gain={k: None if v is None else float(v) for k, v in (row.get("gain") or {}).items()},
        p_value=None if test is None else float(test["p_value"]),
        setting=dict(row.get("setting") or {}),
    )


def _with_store_check(cell: BenchCell, store: Any) -> BenchCell:
    from engine.store import RunNotFoundError

    try:
        runs = [store.get_run(run_id).summary for run_id in cell.run_ids]
    except RunNotFoundError:
        return dataclasses.replace(cell, runs_in_store=False)
    same = all((r.dataset, r.backbone) == (cell.dataset, cell.backbone) for r in runs)
    return dataclasses.replace(cell, runs_in_store=same)


def benches_in_store(store: Any) -> dict[str, int]:
    """The benches whose cells the store holds runs of (runs named "bench NAME: ..." by BenchSpec.config_for),
    with how many runs each: what `kirec bench --table-only` could make a table of."""
    counts: dict[str, int] = {}
    for run in store.list_runs(text="bench "):
        name, sep, _cell = run.name.removeprefix("bench ").partition(": ")
        if run.name.startswith("bench ") and sep:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
