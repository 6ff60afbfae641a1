"""The shipped extractions (prompts/extractions/) against a fresh extraction by the real quantized SmolLM2.

tests/unit/test_knowledge.py checks 8 items on one thread, in seconds; this re-extracts a whole chunk the way the
shipping run did (items 1..N in one chunk of 64, parallel=8) and reports how many answers agree, and the
extraction speed (median items/s over the repeats, each into a fresh cache). The machine is shared: the load
average is recorded too.

    .venv/bin/python benchmarks/bench_shipped.py
    .venv/bin/python benchmarks/bench_shipped.py --items 64 --threads 1 2 --repeats 3
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=64, help="items 1..N (the shipping run's first chunk is 64)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "shipped.json")
    args = parser.parse_args()

    from engine.config import load_config
    from engine.data.preprocess import load_dataset
    from engine.extraction import ExtractionCache, cached_attributes, create_backend, default_prompt_for, extract_items
    from engine.extraction.shipped import SHIPPED_DIR, read_shipped_extractions

    header, records = read_shipped_extractions(sorted(SHIPPED_DIR.glob("ml-latest-small*.jsonl"))[0])
    shipped = {r.item_id: r.attributes for r in records}
    cfg = load_config(flags={"data.dataset": "ml-latest-small", "data.data_root": str(args.data_root)})
    with tempfile.TemporaryDirectory(prefix="kirec-bench-shipped-") as tmp:
        dataset = load_dataset(cfg.data, cwd=Path(tmp))
        prompt = default_prompt_for(dataset.name)
        sample = list(range(1, min(args.items, dataset.num_items) + 1))
        results = []
        for threads in args.threads:
            backend = create_backend("llama-cpp", n_threads=threads)
            if (backend.fingerprint, prompt.content_hash) != (header["model"], header["prompt_hash"]):
                sys.exit(
                    f"the shipped file is for {header['model']} / {header['prompt_hash'][:12]}, "
                    f"not {backend.fingerprint} / {prompt.content_hash[:12]}"
                )
            rates, agreeing = [], []
            load = os.getloadavg()[0]
            for repeat in range(args.repeats):
                with ExtractionCache(Path(tmp) / f"fresh-{threads}-{repeat}.sqlite") as cache:
                    started = time.perf_counter()
                    extract_items(dataset, prompt, backend, cache, item_indices=sample, batch_size=64)
                    rates.append(len(sample) / (time.perf_counter() - started))
                    fresh = cached_attributes(dataset, prompt, backend.fingerprint, cache, sample)
                agreeing.append(sum(fresh.get(i) == shipped.get(dataset.item_ids[i]) for i in sample))
            backend.close()
            row = {
                "threads": threads,
                "items": len(sample),
                "agreeing": agreeing,
                "items_per_second": {
                    "median": round(statistics.median(rates), 3),
                    "min": round(min(rates), 3),
                    "max": round(max(rates), 3),
                },
                "load_average_1min": round(load, 2),
            }
            results.append(row)
            print(
                f"{threads} thread(s): {min(agreeing)}/{len(sample)} answers agree with the shipped ones "
                f"(every repeat: {agreeing}); {row['items_per_second']['median']:.2f} items/s "
                f"(median of {args.repeats}; load average {load:.2f})",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": header["model"],
                "prompt_hash": header["prompt_hash"],
                "cpus": os.cpu_count(),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
