"""Benchmark of the foundation (issue #2): quality, speed and memory of the ID-only backbones.

Each configuration runs in its own subprocess so its peak memory (max RSS) is its own. Prints a table and writes
JSON to bench-results/engine.json. Figures are medians over epochs / repeats; the machine is shared and noisy.

    .venv/bin/python benchmarks/bench_engine.py                      # SASRec, GRU4Rec, BERT4Rec on Amazon Beauty
    .venv/bin/python benchmarks/bench_engine.py --backbones sasrec --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The configuration: full CE, hidden 64, 2 blocks, 2 heads, length 50, batch 256.
TARGET = {
    "model.hidden_size": 64, "model.num_layers": 2, "model.num_heads": 2, "model.max_len": 50,
    "train.batch_size": 256, "train.loss": "ce", "eval.exclude_history": True, "eval.protocol": "full",
}


def one_run(backbone: str, dataset: str, seed: int, db: str, extra: dict) -> dict:
    """Runs inside the child process: trains, then times full-ranking evaluation of every user 5 times."""
    import torch

    from engine.config import load_config
    from engine.data.preprocess import load_dataset
    from engine.evaluation.evaluator import RankingEvaluator
    from engine.events import EpochEnd
    from engine.pipeline import run_experiment
    from engine.trained import load_trained_run
    from engine.store import open_store

    flags = {**TARGET, **extra, "model.backbone": backbone, "data.dataset": dataset, "train.seed": seed, "db": db,
             "train.checkpoint_dir": str(Path(db).parent / "checkpoints")}
    cfg = load_config(flags=flags)
    epochs: list[EpochEnd] = []
    t0 = time.perf_counter()
    best_at = [0.0]

    def sink(event):
        if isinstance(event, EpochEnd):
            epochs.append(event)
            if event.is_best:
                best_at[0] = time.perf_counter() - t0

    result = run_experiment(cfg, on_event=sink, cwd=ROOT)
    total = time.perf_counter() - t0
    trained = load_trained_run(open_store(db), result.run_id, cwd=ROOT)
    evaluator = RankingEvaluator(trained.dataset, "test", cfg.eval, cfg.model.max_len)
    evaluator.evaluate(trained.model, torch.device("cpu"))  # warm-up
    eval_times = []
    for _ in range(5):
        start = time.perf_counter()
        evaluator.evaluate(trained.model, torch.device("cpu"))
        eval_times.append(time.perf_counter() - start)
    return {
        "backbone": backbone, "dataset": dataset, "seed": seed, "run_id": result.run_id, "status": result.status,
        "best_epoch": result.best_epoch, "epochs_run": len(epochs),
        "test": {k: result.test[k] for k in ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@10") if k in result.test},
        "valid_NDCG@10": result.valid.get("NDCG@10"),
        "median_epoch_s": statistics.median(e.train_seconds for e in epochs),
        "median_valid_eval_s": statistics.median(e.eval_seconds for e in epochs),
        "median_full_test_eval_s": statistics.median(eval_times),
        "users_evaluated": int(result.test.get("users", 0)),
        "time_to_best_valid_s": best_at[0], "total_s": total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--backbones", nargs="+", default=["sasrec", "gru4rec", "bert4rec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--set", nargs="*", default=[], help="extra config KEY=VALUE")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "engine.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    extra = dict(pair.split("=", 1) for pair in args.set)
    if args.child:
        backbone, seed, db = args.child.split(",")
        print(json.dumps(one_run(backbone, args.dataset, int(seed), db, extra)))
        return

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    db = str(out.parent / "bench-runs.db")
    results = []
    for backbone in args.backbones:
        for seed in args.seeds:
            cmd = [sys.executable, __file__, "--dataset", args.dataset, "--child", f"{backbone},{seed},{db}",
                   "--set", *args.set]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{backbone} seed {seed} failed")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(row)
            print(f"{backbone:9s} seed {seed}: test HR@10 {row['test']['HR@10']:.4f} NDCG@10 {row['test']['NDCG@10']:.4f}"
                  f" | best epoch {row['best_epoch']} at {row['time_to_best_valid_s']:.0f}s"
                  f" | epoch {row['median_epoch_s']:.2f}s | full eval {row['median_full_test_eval_s']:.3f}s"
                  f" ({row['users_evaluated']} users) | peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    summary = {}
    for backbone in args.backbones:
        rows = [r for r in results if r["backbone"] == backbone]
        summary[backbone] = {
            key: {"mean": statistics.mean(r["test"][key] for r in rows),
                  "std": statistics.stdev(r["test"][key] for r in rows) if len(rows) > 1 else 0.0}
            for key in ("HR@10", "NDCG@10")
        }
    report = {"dataset": args.dataset, "config": {**TARGET, **extra}, "runs": results, "summary": summary,
              "machine": {"cpus": __import__("os").cpu_count()}}
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
