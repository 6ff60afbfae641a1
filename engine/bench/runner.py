"""Runs a bench: every cell of the matrix that the store does not already answer, through the one pipeline.

Order: first every group's tuning grid on the first seed (all groups' first seeds when there is no grid), then the
remaining seeds at each group's chosen setting, so a stopped bench already holds one complete seed. Resumable by
construction: a cell answered by a FINISHED run (identity.py) is read, not rerun; a run that a killed bench left
RUNNING is marked INTERRUPTED (store.mark_orphans) and its cell is trained again from the start.

`table_only` trains nothing: each cell takes the newest FINISHED run of its config and data whatever code version
made it (to recompute a table later); cells without one are listed in `missing`.

`jobs` > 1 trains that many cells at once, each in its own process (spawned: a fresh torch per cell); a tuning
choice waits for its grid, so the two phases run one after the other. A stop (should_stop) reaches the running cells,
which end INTERRUPTED at their next step, and cancels the cells not started, as with one job.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.bench.identity import FinishedRuns
from engine.bench.spec import BenchSpec, Cell
from engine.config import RunConfig
from engine.events import EventSink, Status, ignore_events
from engine.processes import signal_when_parent_dies
from engine.workspace import Workspace

SELECTION_KEY = "valid/NDCG@10"  # the trainer's early-stopping metric, so tuning selects on what training did
STOP_POLL_SECONDS = 0.2  # how often a parallel bench checks should_stop while its cells train


@dataclass(frozen=True)
class CellRun:
    cell: Cell
    run_id: int
    reused: bool  # answered by a run the store already held


@dataclass
class BenchOutcome:
    spec: BenchSpec
    runs: list[CellRun] = field(default_factory=list)
    chosen: dict[tuple[str, str, str], tuple[tuple[str, Any], ...]] = field(default_factory=dict)
    tuning: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)  # per group: every point
    complete: bool = True
    missing: list[Cell] = field(default_factory=list)  # table_only: cells no stored run answers
    table_only: bool = False

    @property
    def trained(self) -> int:
        return sum(not r.reused for r in self.runs)


def run_bench(
    spec: BenchSpec,
    db: str | Path,
    cwd: Path | None = None,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
    jobs: int = 1,
    table_only: bool = False,
    workspace: str | Path | None = None,
) -> BenchOutcome:
    """`workspace`: where every cell's checkpoints and caches go (None: each cell config's, by default `cwd`);
    `db` is opened as given."""
    from engine.store import open_store

    if jobs < 1:
        raise ValueError(f"jobs: expected at least 1, got {jobs}")
    cwd = Path(cwd or Path.cwd())
    store = open_store(db, create=not table_only)  # reading a table never makes an empty database
    try:
        store.mark_orphans()  # a cell a killed bench was training reads INTERRUPTED, and is trained again
        context = _Context(
            spec,
            str(db),
            cwd,
            store,
            FinishedRuns(store),
            None if table_only else store.code_version(),
            on_event,
            should_stop,
            jobs,
            table_only,
            None if workspace is None else str(workspace),
        )
        outcome = BenchOutcome(spec, table_only=table_only)
        groups = spec.groups()
        grid = spec.grid()
        first = [spec.cell(g, spec.seeds[0], s) for g in groups for s in grid]
        if not context.execute(first, outcome):
            outcome.complete = False
            return outcome  # stopped (Ctrl-C): no choice from a grid that did not finish
        for group in groups:
            points = [r for r in outcome.runs if r.cell.group == group]
            if not points:  # table_only, and no stored run of this group's first seed
                if len(grid) == 1:
                    outcome.chosen[group] = grid[0]  # nothing to choose: the other seeds can still be read
                continue
            scores = [
                (context.finder.detail(r.run_id).valid_metrics.get(SELECTION_KEY, float("-inf")), -i, r)
                for i, r in enumerate(points)
            ]
            best = max(scores, key=lambda t: (t[0], t[1]))[2]  # ties: the first grid point
            outcome.chosen[group] = best.cell.setting
            outcome.tuning[group] = [
                {"setting": dict(r.cell.setting), "run_id": r.run_id, SELECTION_KEY: score} for score, _, r in scores
            ]
        rest = [spec.cell(g, seed, outcome.chosen[g]) for seed in spec.seeds[1:] for g in groups if g in outcome.chosen]
        outcome.complete = context.execute(rest, outcome) and not outcome.missing
        return outcome
    finally:
        store.close()


@dataclass
class _Context:
    spec: BenchSpec
    db: str
    cwd: Path
    store: Any
    finder: FinishedRuns
    code_version: str | None  # None: any (table_only)
    on_event: EventSink
    should_stop: Callable[[], bool] | None
    jobs: int
    table_only: bool
    workspace: str | None
    _fingerprints: dict[str, tuple[str, str]] = field(default_factory=dict)

    def execute(self, cells: list[Cell], outcome: BenchOutcome) -> bool:
        """Reuse or train `cells`, appending to outcome.runs in `cells`' order; False when stopped early."""
        answered: dict[int, CellRun] = {}
        pending: list[tuple[int, Cell, RunConfig]] = []
        for index, cell in enumerate(cells):
            cfg = self.spec.config_for(cell, self.db)
            if self.workspace is not None:
                cfg.workspace = self.workspace
            dataset, fingerprint = self._fingerprint(cfg)
            found = self.finder.find(cfg.to_dict(), dataset, fingerprint, self.code_version)
            if found is not None:
                answered[index] = CellRun(cell, found.id, reused=True)
                self.on_event(Status(f"bench: {cell.label()}: reusing finished run {found.id}"))
            elif self.table_only:
                outcome.missing.append(cell)
                self.on_event(Status(f"bench: {cell.label()}: no finished run in the store", level="warning"))
            else:
                pending.append((index, cell, cfg))
        complete = self._train(pending, answered)
        outcome.runs.extend(answered[i] for i in sorted(answered))
        return complete

    def _train(self, pending: list[tuple[int, Cell, RunConfig]], answered: dict[int, CellRun]) -> bool:
        from engine.pipeline import run_experiment

        total = len(pending)
        if self.jobs == 1 or total <= 1:
            for done, (index, cell, cfg) in enumerate(pending):
                if self.should_stop is not None and self.should_stop():
                    return False
                self.on_event(Status(f"bench: training {cell.label()} ({done + 1} of {total} in this phase)"))
                result = run_experiment(cfg, on_event=self.on_event, should_stop=self.should_stop, cwd=self.cwd)
                if result.status != "FINISHED":
                    return False
                answered[index] = CellRun(cell, result.run_id, reused=False)
            return True
        self.on_event(Status(f"bench: training {total} cells, {self.jobs} at a time"))
        spawn = multiprocessing.get_context("spawn")
        stop_cells = spawn.Event()  # what a stop asks of the cells running in the workers
        pool = ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=spawn, initializer=_start_worker, initargs=(stop_cells,)
        )
        try:
            futures = {
                pool.submit(_train_in_worker, cfg.to_dict(), str(self.cwd)): (index, cell)
                for index, cell, cfg in pending
            }
            complete, waiting = True, set(futures)
            while waiting:
                done, waiting = wait(waiting, timeout=STOP_POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.cancelled():
                        continue
                    index, cell = futures[future]
                    run_id, status = future.result()
                    self.on_event(Status(f"bench: {cell.label()}: run {run_id} {status}"))
                    if status == "FINISHED":
                        answered[index] = CellRun(cell, run_id, reused=False)
                    else:
                        complete = False
                if self.should_stop is not None and self.should_stop() and not stop_cells.is_set():
                    complete = False
                    self._stop_cells(stop_cells, waiting)
        except BaseException:  # a second Ctrl-C: the workers must not go on training behind the user's back
            self._stop_cells(stop_cells, futures)
            raise
        finally:
            pool.shutdown(wait=True)  # the stopped cells end at their next step, INTERRUPTED and resumable
        return complete

    def _stop_cells(self, stop_cells: Any, futures: Any) -> None:
        if stop_cells.is_set():
            return
        stop_cells.set()
        for future in futures:
            future.cancel()  # cells that have not started never start
        self.on_event(Status("bench: stopping the running cells after their current step"))

    def _fingerprint(self, cfg: RunConfig) -> tuple[str, str]:
        """(dataset name, fingerprint) of a cell's preprocessed data; preprocessing is cached, and read once here."""
        from engine.data.preprocess import load_dataset

        key = json.dumps(dataclasses.asdict(cfg.data), sort_keys=True, default=str)
        if key not in self._fingerprints:
            dataset = load_dataset(
                cfg.data, cwd=self.cwd, on_event=self.on_event, cache_dir=Workspace.of(cfg, self.cwd).dataset_cache
            )
            self._fingerprints[key] = (dataset.name, dataset.fingerprint)
        return self._fingerprints[key]


_stop_requested: Any = None  # in a worker process: the bench's stop event
_bench_gone = threading.Event()  # in a worker process: set when the bench process died
_in_cell = threading.Event()  # in a worker process: set while it trains a cell


def _start_worker(stop_cells: Any) -> None:
    """A worker leaves Ctrl-C to the bench: a terminal sends it to the whole process group, and a worker that took it
    would abort its cell mid-write instead of stopping at the next step as the bench asks. A bench killed outright
    (SIGKILL) cannot ask: on Linux the kernel then sends the worker SIGTERM, and its cell stops as if asked, instead
    of training on, orphaned, into a store that the next bench reads."""
    global _stop_requested
    _stop_requested = stop_cells
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_bench_gone)
    signal_when_parent_dies(signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():  # died before the line above
        _bench_gone.set()


def _on_bench_gone(signum: int, frame: Any) -> None:
    _bench_gone.set()
    if not _in_cell.is_set():  # idle, it would wait for work forever: nobody is left to send any
        os._exit(1)


def _stop_in_worker() -> bool:
    return _bench_gone.is_set() or (_stop_requested is not None and _stop_requested.is_set())


def _train_in_worker(config: dict[str, Any], cwd: str) -> tuple[int | None, str]:
    from engine.pipeline import run_experiment

    _in_cell.set()
    try:
        result = run_experiment(
            RunConfig.from_dict(config, source="bench cell"), should_stop=_stop_in_worker, cwd=Path(cwd)
        )
    finally:
        _in_cell.clear()
    if _bench_gone.is_set():  # the cell ended INTERRUPTED, its store closed; nobody is left to read the result
        os._exit(1)
    return result.run_id, result.status
