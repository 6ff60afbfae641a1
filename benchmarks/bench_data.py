"""Benchmark of dataset loading: a cold load (parse + preprocess + write the cache) against a warm one (the cache).

Each repeat's cold load gets a fresh, empty cache folder; the warm load follows it on the same folder. Figures are
medians over the repeats (min and max beside them). The machine is shared: the load average is recorded too.
These figures used to be wall-clock assertions in tests/unit/test_data_shared.py; a loaded CI machine made them flaky.

    .venv/bin/python benchmarks/bench_data.py
    .venv/bin/python benchmarks/bench_data.py --datasets amazon-beauty --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def time_loads(name: str, data_root: Path, repeats: int) -> dict:
    from engine.config import DataConfig
    from engine.data import load_dataset

    cold, warm, hits = [], [], 0
    shape = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="kirec-bench-data-") as cache_dir:
            cfg = DataConfig(dataset=name, data_root=str(data_root), cache_dir=cache_dir)
            started = time.perf_counter()
            ds = load_dataset(cfg, cwd=Path(cache_dir))
            cold.append(time.perf_counter() - started)
            events: list = []
            started = time.perf_counter()
            load_dataset(cfg, cwd=Path(cache_dir), on_event=events.append)
            warm.append(time.perf_counter() - started)
            hits += any(e.message.startswith("cache hit") for e in events)
            shape = (ds.num_users, ds.num_items, ds.num_interactions)
    return {
        "dataset": name,
        "repeats": repeats,
        "users": shape[0],
        "items": shape[1],
        "interactions": shape[2],
        "cold_seconds": summary(cold),
        "warm_seconds": summary(warm),
        "warm_cache_hits": hits,
    }


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["amazon-beauty", "ml-latest-small"])
    parser.add_argument("--data-root", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "data.json")
    args = parser.parse_args()
    results = []
    for name in args.datasets:
        if not (args.data_root / name).is_dir():
            print(f"{name}: not in {args.data_root}, skipped", file=sys.stderr)
            continue
        load = os.getloadavg()[0]
        row = time_loads(name, args.data_root, args.repeats)
        row["load_average_1min"] = round(load, 2)
        results.append(row)
        print(
            f"{name}: {row['users']:,} users, {row['items']:,} items, {row['interactions']:,} interactions; "
            f"cold {row['cold_seconds']['median']:.2f}s, warm {row['warm_seconds']['median']:.3f}s "
            f"(medians of {args.repeats}; warm from the cache {row['warm_cache_hits']}/{args.repeats}; "
            f"load average {load:.2f})",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
