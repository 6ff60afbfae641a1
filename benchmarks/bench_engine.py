"""Benchmark of the engine on a real dataset: quality, speed and memory, one subprocess per (variant, seed).

Each run gets its own process so its peak memory (max RSS) is its own. Prints a line per run and a summary
(mean ± std over seeds), and writes JSON. The machine is shared and noisy: epoch times are medians over epochs,
evaluation times medians of 5 repeats.

    .venv/bin/python benchmarks/bench_engine.py                       # SASRec, GRU4Rec, BERT4Rec on Amazon Beauty
    .venv/bin/python benchmarks/bench_engine.py --variants sasrec --seeds 1 2 3
    .venv/bin/python benchmarks/bench_engine.py --variant kirec-gate=knowledge.method=kirec,knowledge.fusion=gate
    .venv/bin/python benchmarks/bench_engine.py --time-eval 3     # re-time a stored run's full evaluation
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.choices import BACKBONE_CHOICES  # noqa: E402 (after the path set-up)

# The foundation issue's configuration: full CE, hidden 64, 2 blocks, 2 heads, length 50, batch 256, ID-only.
TARGET = {
    "model.hidden_size": 64,
    "model.num_layers": 2,
    "model.num_heads": 2,
    "model.max_len": 50,
    "train.batch_size": 256,
    "train.loss": "ce",
    "knowledge.method": "id",
    "eval.exclude_history": True,
    "eval.protocol": "full",
}
BACKBONES = {name: {"model.backbone": name} for name in BACKBONE_CHOICES}


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """ "label=key=value,key=value" → (label, {key: value})."""
    label, _, rest = text.partition("=")
    settings = dict(pair.split("=", 1) for pair in rest.split(",") if pair)
    return label, settings


def one_run(settings: dict, dataset: str, seed: int, db: str) -> dict:
    """Runs inside the child process: trains, then times full-ranking evaluation of every user 5 times."""
    import torch

    from engine.config import load_config
    from engine.events import EpochEnd
    from engine.pipeline import run_experiment
    from engine.store import open_store
    from engine.trained import load_trained_run
    from engine.training.device import resolve_device

    flags = {
        **TARGET,
        **settings,
        "data.dataset": dataset,
        "train.seed": seed,
        "db": db,
        "train.checkpoint_dir": str(Path(db).parent / "checkpoints"),
    }
    cfg = load_config(flags=flags)
    epochs: list[EpochEnd] = []
    t0 = time.perf_counter()
    best_at = [0.0]

    def sink(event):
        if isinstance(event, EpochEnd):
            epochs.append(event)
            if event.is_best:
                best_at[0] = time.perf_counter() - t0
            print(
                f"  epoch {event.epoch} NDCG@10 {event.valid['NDCG@10']:.4f} {event.train_seconds:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    result = run_experiment(cfg, on_event=sink, cwd=ROOT)
    total = time.perf_counter() - t0
    trained = load_trained_run(open_store(db), result.run_id, cwd=ROOT)
    device = resolve_device(cfg.train.device)
    eval_times = time_full_evaluation(trained, cfg, device=device)
    return {
        "settings": settings,
        "dataset": dataset,
        "seed": seed,
        "run_id": result.run_id,
        "status": result.status,
        "best_epoch": result.best_epoch,
        "epochs_run": len(epochs),
        "test": {k: v for k, v in result.test.items() if k.split("@")[0] in ("HR", "NDCG", "MRR")},
        "valid_NDCG@10": result.valid.get("NDCG@10"),
        "trainable_parameters": sum(p.numel() for p in trained.model.parameters() if p.requires_grad),
        "median_epoch_s": statistics.median(e.train_seconds for e in epochs),
        "median_valid_eval_s": statistics.median(e.eval_seconds for e in epochs),
        "median_full_test_eval_s": statistics.median(eval_times),
        "users_evaluated": int(result.test.get("users", 0)),
        "time_to_best_valid_s": best_at[0],
        "total_s": total,
        "knowledge": {k: v for k, v in result.info.items() if isinstance(v, (int, float, str))},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
        "device": result.info.get("device", str(device)),
        # training's and evaluation's peak on the GPU (torch's allocator), None on the CPU
        "peak_gpu_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "peak_gpu_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20 if device.type == "cuda" else None,
    }


def time_full_evaluation(trained, cfg, repeats: int = 5, device=None) -> list[float]:
    """Seconds per full-ranking evaluation of every test user, after one warm-up pass, on `device` (the CPU
    by default)."""
    import torch

    from engine.evaluation.evaluator import RankingEvaluator

    device = device or torch.device("cpu")
    model = trained.model.to(device)
    evaluator = RankingEvaluator(trained.dataset, "test", cfg.eval, cfg.model.max_len)
    evaluator.evaluate(model, device)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluator.evaluate(model, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def time_stored_run(db: str, run_id: int, repeats: int) -> None:
    """Re-time the full evaluation of a run already trained (e.g. on a quieter machine than during training)."""
    from engine.store import open_store
    from engine.trained import load_trained_run

    trained = load_trained_run(open_store(db), run_id, cwd=ROOT)
    times = time_full_evaluation(trained, trained.config, repeats)
    print(
        json.dumps(
            {
                "run_id": run_id,
                "full_test_eval_s": times,
                "median_s": statistics.median(times),
                "load_average": os.getloadavg(),
            }
        )
    )


def run_variants(
    variants: dict[str, dict], dataset: str, seeds: list[int], out: Path, jobs: int = 1, db: str | None = None
) -> dict:
    """Runs every (variant, seed) in its own process, `jobs` at a time; the JSON is rewritten after each run,
    so a benchmark stopped part-way keeps what it measured. Runs side by side share the machine: their
    quality figures stand, their times do not (time with jobs=1)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    db = db or str(out.parent / "bench-runs.db")  # the runs, their checkpoints beside it
    results: list[dict] = []
    report: dict = {}

    def child(label: str, settings: dict, seed: int) -> dict:
        cmd = [sys.executable, __file__, "--dataset", dataset, "--child", json.dumps([settings, seed, db])]
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{label} seed {seed} failed (exit {proc.returncode}); finished runs are in {out}")
        return {"variant": label, **json.loads(proc.stdout.strip().splitlines()[-1])}

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = [pool.submit(child, label, settings, seed) for label, settings in variants.items() for seed in seeds]
        for future in as_completed(pending):
            row = future.result()
            label = row["variant"]
            results.append(row)
            print(
                f"{label:14s} seed {row['seed']}: test HR@10 {row['test']['HR@10']:.4f} NDCG@10 {row['test']['NDCG@10']:.4f}"
                f" | best epoch {row['best_epoch']} at {row['time_to_best_valid_s']:.0f}s of {row['total_s']:.0f}s"
                f" | epoch {row['median_epoch_s']:.2f}s | full eval {row['median_full_test_eval_s']:.3f}s"
                f" ({row['users_evaluated']} users) | peak RSS {row['peak_rss_mb']:.0f} MB"
                f" | {row['trainable_parameters']:,} params",
                flush=True,
            )
            report = _report(dataset, variants, results, jobs)
            out.write_text(json.dumps(report, indent=2))
    for label, s in report.get("summary", {}).items():
        print(
            f"{label:14s} HR@10 {s['HR@10']['mean']:.4f} ± {s['HR@10']['std']:.4f}  "
            f"NDCG@10 {s['NDCG@10']['mean']:.4f} ± {s['NDCG@10']['std']:.4f}  (n={s['HR@10']['n']})"
        )
    print(f"wrote {out}")
    return report


def _report(dataset: str, variants: dict[str, dict], results: list[dict], jobs: int = 1) -> dict:
    summary = {}
    for label in variants:
        rows = [r for r in results if r["variant"] == label]
        if not rows:
            continue
        summary[label] = {
            key: {
                "mean": statistics.mean(r["test"][key] for r in rows),
                "std": statistics.stdev(r["test"][key] for r in rows) if len(rows) > 1 else 0.0,
                "n": len(rows),
            }
            for key in ("HR@10", "NDCG@10")
        }
        summary[label]["median_epoch_s"] = statistics.median(r["median_epoch_s"] for r in rows)
    return {
        "dataset": dataset,
        "base_config": TARGET,
        "variants": variants,
        "runs": results,
        "summary": summary,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(), "runs_side_by_side": jobs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--variants", nargs="+", default=list(BACKBONES), help="backbone names")
    parser.add_argument("--variant", action="append", default=[], help="LABEL=key=value,key=value (repeatable)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "engine.json"))
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (quality sweeps; time with 1)")
    parser.add_argument("--time-eval", type=int, metavar="RUN_ID", help="only re-time the evaluation of a stored run")
    parser.add_argument("--db", help="the runs database (default: bench-runs.db beside --out)")
    parser.add_argument("--repeats", type=int, default=5, help="with --time-eval")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_eval is not None:
        time_stored_run(args.db or str(ROOT / "bench-results" / "bench-runs.db"), args.time_eval, args.repeats)
        return
    if args.child:
        settings, seed, db = json.loads(args.child)
        print(json.dumps(one_run(settings, args.dataset, seed, db)))
        return
    variants = dict(parse_variant(v) for v in args.variant) or {name: BACKBONES[name] for name in args.variants}
    run_variants(variants, args.dataset, args.seeds, Path(args.out), args.jobs, args.db)


if __name__ == "__main__":
    main()
