"""Benchmark of kirec-tui (issue #4): start-up, Runs table responsiveness, key latency while training.

- start-up: a fresh interpreter starts the app on a runs.db of 1,000 runs; times to first paint (the app is
  ready and has drawn its first frame) and to the table showing all 1,000 rows. Median of --repeats runs.
- Runs table at 10,000 runs: load, text filter, clear the filter, sort by a store column and by a column the
  UI sorts itself, each timed from the request to the rows being in the table. Median of --repeats.
- key latency: Ctrl+L pressed N times on the Train screen, idle and while a tiny model trains in the worker;
  latency = from the key being sent to its action running. Median and 95th percentile.

Prints a table and writes JSON to bench-results/tui.json. The machine is shared: figures are noisy.

    .venv/bin/python benchmarks/bench_tui.py
    .venv/bin/python benchmarks/bench_tui.py --repeats 3 --presses 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (160, 45)
TINY = "model.hidden_size=16 model.num_layers=1 model.max_len=12 train.batch_size=8 eval.ks=10 train.patience=100000"


# -- building databases -----------------------------------------------------------------------------------------


def build_db(path: Path, runs: int, seeded: int = 100) -> Path:
    """`seeded` genuine runs through the store, then copied in SQL up to `runs` (writing 10,000 runs one
    transaction at a time would take minutes and measure the store, not the TUI)."""
    from engine.store import open_store

    if path.exists():
        return path
    names = ("sasrec", "gru4rec", "bert4rec")
    with open_store(path) as store:
        for i in range(min(seeded, runs)):
            params = {
                "knowledge.fusion": ("gate", "add", "concat")[i % 3],
                "train.lr": 0.001 * (1 + i % 4),
                "train.seed": i % 5,
                "model.backbone": names[i % 3],
            }
            run_id = store.create_run(
                name=f"run-{i}",
                config={},
                dataset=("ml-latest-small", "amazon-beauty")[i % 2],
                dataset_fingerprint="f",
                backbone=names[i % 3],
                method=("id", "kirec")[i % 2],
                device="cpu",
                params=params,
                code_version="bench",
            )
            for epoch in range(1, 6):
                store.log_metrics(run_id, {"valid/NDCG@10": 0.01 * epoch + i * 1e-4, "train/loss": 8 / epoch}, epoch)
            store.log_metrics(run_id, {"test/NDCG@10": 0.03 + i * 1e-4, "test/HR@10": 0.06 + i * 1e-4}, None)
            store.finish_run(run_id, "FINISHED")
    con = sqlite3.connect(path)
    with con:
        columns = [r[1] for r in con.execute("PRAGMA table_info(runs)") if r[1] != "id"]
        cols = ", ".join(columns)
        while (count := con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]) < runs:
            batch = min(count, runs - count)
            top = con.execute("SELECT MAX(id) FROM runs").fetchone()[0]
            con.execute(f"INSERT INTO runs ({cols}) SELECT {cols} FROM runs ORDER BY id LIMIT {batch}")
            for table, keycols in (
                ("params", "key, value"),
                ("metrics", "key, step, value, timestamp"),
                ("tags", "key, value"),
            ):
                con.execute(
                    f"INSERT INTO {table} (run_id, {keycols}) SELECT run_id + {top}, {keycols} FROM {table} "
                    f"WHERE run_id <= {batch}"
                )
        con.execute("UPDATE change_counter SET value = value + 1")
    con.close()
    return path


# -- start-up ---------------------------------------------------------------------------------------------------

STARTUP_CHILD = r"""
import time, sys, json
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from kirec_tui.app import KirecApp
import asyncio
async def main():
    app = KirecApp(db_path=sys.argv[2], cwd=sys.argv[3], env={}, poll_seconds=3600)
    async with app.run_test(size=(160, 45)) as pilot:
        painted = time.perf_counter() - t0
        while len(getattr(app.screen, "runs", [])) < int(sys.argv[4]):
            await pilot.pause(0.005)
        await pilot.pause()
        print(json.dumps({"first_paint": painted, "rows_shown": time.perf_counter() - t0}))
asyncio.run(main())
"""


def bench_startup(db: Path, runs: int, repeats: int, cwd: Path) -> dict:
    samples = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", STARTUP_CHILD, str(ROOT), str(db), str(cwd), str(runs)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "runs": runs,
        "repeats": repeats,
        "first_paint_s_median": statistics.median(s["first_paint"] for s in samples),
        "all_rows_shown_s_median": statistics.median(s["rows_shown"] for s in samples),
        "samples": samples,
    }


# -- Runs table at scale ----------------------------------------------------------------------------------------


async def _settle(pilot) -> None:
    """Wait for every worker; a load superseded by a newer one (exclusive workers) is cancelled, not failed."""
    from textual.worker import WorkerCancelled

    while True:
        try:
            await pilot.app.workers.wait_for_complete()
            break
        except WorkerCancelled:
            continue
    await pilot.pause()


async def _timed(pilot, start) -> float:
    began = time.perf_counter()
    result = start()
    if asyncio.iscoroutine(result):
        await result
    await _settle(pilot)
    return time.perf_counter() - began


async def _table_figures(db: Path, cwd: Path, repeats: int) -> dict:
    from kirec_tui.app import KirecApp
    from kirec_tui.widgets.runs_table import RunsTable

    app = KirecApp(db_path=db, cwd=cwd, env={}, poll_seconds=3600)
    figures: dict[str, list[float]] = {
        k: [] for k in ("reload_all", "filter_text", "clear_filter", "sort_store_ndcg", "sort_ui_fusion")
    }
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        screen = app.screen
        rows, shown = len(screen.runs), screen.query_one(RunsTable).row_count
        for _ in range(repeats):
            figures["reload_all"].append(await _timed(pilot, screen.load_runs))
            # typed as a person would: "/" focuses the filter, Enter applies it at once
            figures["filter_text"].append(await _timed(pilot, lambda: pilot.press("slash", *"run-7", "enter")))
            filtered = len(screen.runs)
            figures["clear_filter"].append(await _timed(pilot, lambda: pilot.press("slash", "ctrl+u", "enter")))
            figures["sort_store_ndcg"].append(await _timed(pilot, lambda: screen.sort_by("test/NDCG@10", True)))
            figures["sort_ui_fusion"].append(await _timed(pilot, lambda: screen.sort_by("fusion", False)))
            screen.sort_by("started", True)
            await _settle(pilot)
    out = {f"{k}_s_median": statistics.median(v) for k, v in figures.items()}
    out.update({"rows": rows, "rows_in_table_window": shown, "filtered_rows": filtered, "repeats": repeats})
    return out


# -- key latency ------------------------------------------------------------------------------------------------


async def _key_latency(cwd: Path, dataset: Path, presses: int) -> dict:
    from kirec_tui.app import KirecApp
    from kirec_tui.screens.train import TrainScreen

    app = KirecApp(db_path=cwd / "train-runs.db", cwd=cwd, env={}, poll_seconds=3600)
    result: dict = {}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        screen: TrainScreen = app.screen  # type: ignore[assignment]
        handled: list[float] = []
        original = screen.action_clear_log

        def clear_log() -> None:  # the action, timestamped when it runs
            handled.append(time.perf_counter())
            original()

        screen.action_clear_log = clear_log  # type: ignore[method-assign]

        async def measure(count: int) -> list[float]:
            latencies = []
            for _ in range(count):
                sent = time.perf_counter()
                await pilot.press("ctrl+l")
                latencies.append(handled[-1] - sent)
                await pilot.pause(0.02)  # spread presses over the run, as a person would
            return latencies

        idle = await measure(presses)
        form = screen.query_one("#train-form")
        form.set_value("dataset", str(dataset))
        form.set_value("epochs", "100000")
        form.set_value("device", "cpu")
        form.set_value("extra", TINY)
        await pilot.press("ctrl+r")
        while screen.events_seen < 20 and screen.running:
            await pilot.pause(0.05)
        if not screen.running:
            result["error"] = f"the run did not start: {screen.worker.error if screen.worker else 'no worker'}"
            busy = []
        else:
            events_before = screen.events_seen
            busy = await measure(presses)
            result["engine_events_during_measure"] = screen.events_seen - events_before
            await pilot.press("ctrl+x")
            await screen.worker.wait()

    def summary(values: list[float]) -> dict:
        if not values:
            return {}
        ordered = sorted(values)
        return {
            "median_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max_ms": 1000 * ordered[-1],
            "presses": len(ordered),
        }

    result.update({"idle": summary(idle), "while_training": summary(busy)})
    return result


def write_tiny_dataset(folder: Path, users: int = 200, items: int = 60, length: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user,item,timestamp"]
    for u in range(users):
        for t in range(length):
            lines.append(f"u{u},i{(u + t) % items},{1000 + t}")
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--work-dir", type=Path, default=None, help="where the benchmark databases go (kept)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "tui.json")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kirec-bench-tui-"))
    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    db_1k = build_db(work / "runs-1k.db", 1_000)
    db_10k = build_db(work / "runs-10k.db", 10_000)
    print(f"databases ready in {time.perf_counter() - began:.1f}s ({work})", flush=True)

    startup = bench_startup(db_1k, 1_000, args.repeats, work)
    print(
        f"start-up, 1,000 runs: first paint {startup['first_paint_s_median']:.2f}s, "
        f"all rows shown {startup['all_rows_shown_s_median']:.2f}s (median of {args.repeats})",
        flush=True,
    )
    table = asyncio.run(_table_figures(db_10k, work, max(1, args.repeats // 2 + 1)))
    print(
        f"Runs table, {table['rows']:,} runs: "
        + ", ".join(f"{k.removesuffix('_s_median')} {v:.2f}s" for k, v in table.items() if k.endswith("_s_median")),
        flush=True,
    )
    latency = asyncio.run(_key_latency(work, write_tiny_dataset(work / "tiny"), args.presses))
    for label in ("idle", "while_training"):
        figures = latency.get(label) or {}
        if figures:
            print(
                f"key latency {label}: median {figures['median_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms, "
                f"max {figures['max_ms']:.1f} ms ({figures['presses']} presses)",
                flush=True,
            )
    if "error" in latency:
        print(f"key latency while training: {latency['error']}", flush=True)

    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "startup_1k": startup,
        "runs_table_10k": table,
        "key_latency": latency,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
