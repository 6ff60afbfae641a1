"""Benchmark of the semantic side: MiniLM encoding throughput and PCA on MovieLens latest-small.

Embeds every movie's "title: …; genres: …" through the on-disk cache, starting cold each time (a fresh cache
folder), and reports the median items/s over the runs; then times a fully cached pass and PCA to D=64 with its
explained variance. Prints a summary and writes JSON to bench-results/embedding.json.

    .venv/bin/python benchmarks/bench_embedding.py
    .venv/bin/python benchmarks/bench_embedding.py --runs 5 --batch-size 128 --device cuda
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.semantic.embedding_cache import EmbeddingCache, embed_texts  # noqa: E402
from engine.semantic.encoders import SentenceTransformerEncoder  # noqa: E402
from engine.semantic.reduction import fit_pca  # noqa: E402
from engine.semantic.texts import render_raw_text  # noqa: E402

MOVIES = ROOT.parent / "shared" / "data" / "ml-latest-small" / "movies.csv"


def movie_texts(path: Path) -> list[str]:
    """Title and genres per movie, rendered the way the `raw` embed text does."""
    texts = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            genres = [g for g in row["genres"].split("|") if g and g != "(no genres listed)"]
            texts.append(render_raw_text({"title": row["title"].strip(), "genres": genres}))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=Path, default=MOVIES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "embedding.json")
    args = parser.parse_args()
    if not args.movies.exists():
        sys.exit(f"{args.movies}: not found (the shared data folder sits beside the checkout)")

    texts = movie_texts(args.movies)
    encoder = SentenceTransformerEncoder(device=args.device)
    t0 = time.perf_counter()
    encoder.encode(texts[:32], batch_size=args.batch_size)  # loads the model and warms it up
    load_seconds = time.perf_counter() - t0

    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder, EmbeddingCache(folder) as cache:
            t0 = time.perf_counter()
            vectors, stats = embed_texts(texts, encoder, cache, batch_size=args.batch_size)
            cold.append(time.perf_counter() - t0)
            assert stats.encoded == stats.unique, "a cold cache must encode every text"
            t0 = time.perf_counter()
            _, stats = embed_texts(texts, encoder, cache, batch_size=args.batch_size)
            warm.append(time.perf_counter() - t0)
            assert stats.encoded == 0

    pca_seconds = []
    for _ in range(args.runs):
        fitted = fit_pca(vectors, args.dim)
        pca_seconds.append(fitted.seconds)
    ratio = fitted.explained_variance_ratio

    result = {
        "items": len(texts),
        "unique_texts": stats.unique,
        "encoder": encoder.name,
        "device": encoder.device_in_use,
        "batch_size": args.batch_size,
        "runs": args.runs,
        "model_load_and_warmup_s": round(load_seconds, 3),
        "cold_seconds": [round(s, 3) for s in cold],
        "cold_items_per_s_median": round(len(texts) / statistics.median(cold), 1),
        "cached_seconds_median": round(statistics.median(warm), 4),
        "cached_items_per_s_median": round(len(texts) / statistics.median(warm), 1),
        "pca_dim": args.dim,
        "pca_seconds_median": round(statistics.median(pca_seconds), 4),
        "pca_explained_variance": round(float(ratio.sum()), 4),
        "pca_explained_variance_first5": [round(float(r), 4) for r in ratio[:5]],
        "embedding_dim": int(vectors.shape[1]),
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
    }
    print(
        f"MiniLM on {result['items']} MovieLens titles+genres ({result['device']}, batch {args.batch_size}): "
        f"{result['cold_items_per_s_median']} items/s cold (median of {args.runs}: {result['cold_seconds']} s); "
        f"cached pass {result['cached_seconds_median']} s; model load {result['model_load_and_warmup_s']} s"
    )
    print(
        f"PCA {vectors.shape[1]}→{args.dim}: {result['pca_seconds_median']} s, explained variance "
        f"{result['pca_explained_variance']} (first components {result['pca_explained_variance_first5']})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
