"""What an extraction prompt costs per item: its own prompt tokens (after the shared prefix), its answer tokens,
and items/s with kirec's llama.cpp backend, on real items of a dataset (their full text, tags included).

On a small model the CPU is compute-bound, so items/s follows tokens per item; this measures the "compact
schema" lever by comparing prompts on the same items, each timed in the same process after a warm-up.

    .venv/bin/python benchmarks/bench_prompt_cost.py --dataset ml-latest-small --prompts movies \\
        benchmarks/prompts/movies-compact.toml --items 128 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_extraction import valid_fraction  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--prompts", nargs="+", default=["movies"], help="prompt names or files")
    parser.add_argument("--items", type=int, default=128, help="items spread over the catalogue")
    parser.add_argument("--chunk", type=int, default=32, help="items per generate() call, as kirec extract sends")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "prompt-cost.json"))
    args = parser.parse_args()

    from engine.config import DataConfig
    from engine.data.preprocess import load_dataset
    from engine.extraction.backends.llama_cpp import LlamaCppBackend
    from engine.extraction.prompts import dataset_fields, load_prompt, validate_prompt

    dataset = load_dataset(DataConfig(dataset=args.dataset), cwd=ROOT)
    step = max(1, dataset.num_items // args.items)
    items = list(range(1, dataset.num_items + 1, step))[: args.items]
    backend = LlamaCppBackend(parallel=args.parallel)
    rows = []
    for name in args.prompts:
        prompt = load_prompt(name)
        validate_prompt(prompt, dataset_fields(dataset.item_text[1:]))
        texts = [prompt.render(dataset.item_text[i]) for i in items]
        schema = prompt.json_schema()
        backend.generate(texts[:2], schema, system=prompt.system)  # evaluates this prompt's shared prefix
        tokens = [backend.tokenize_chat(t, prompt.system) for t in texts]
        prefix = len(os.path.commonprefix(tokens))  # what every item shares, evaluated once
        item_tokens = [len(t) - prefix for t in tokens]
        rates, outputs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            outputs = [
                out
                for c in range(0, len(texts), args.chunk)
                for out in backend.generate(texts[c : c + args.chunk], schema, system=prompt.system)
            ]
            rates.append(len(texts) / (time.perf_counter() - start))
        answer_tokens = [len(backend._llm.tokenize(o.encode(), add_bos=False, special=False)) for o in outputs]
        row = {
            "prompt": prompt.name,
            "source": str(prompt.source),
            "prompt_hash": prompt.content_hash,
            "items": len(texts),
            "prefix_tokens": prefix,
            "item_prompt_tokens_mean": statistics.mean(item_tokens),
            "answer_tokens_mean": statistics.mean(answer_tokens),
            "items_per_s_median": statistics.median(rates),
            "items_per_s_all": [round(r, 3) for r in rates],
            "valid": valid_fraction(prompt, outputs),
            "distinct_answers": len(set(outputs)),
            "sample": outputs[:3],
            "load_average": os.getloadavg(),
        }
        rows.append(row)
        print(
            f"{prompt.name:<16} prefix {prefix} | per item {row['item_prompt_tokens_mean']:.1f} prompt +"
            f" {row['answer_tokens_mean']:.1f} answer tokens | {row['items_per_s_median']:.2f} items/s"
            f" {row['items_per_s_all']} | valid {row['valid']:.0%} | {row['distinct_answers']} distinct answers",
            flush=True,
        )
    backend.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "dataset": args.dataset,
                "model": backend.fingerprint,
                "cpus": os.cpu_count(),
                "parallel": args.parallel,
                "chunk": args.chunk,
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
