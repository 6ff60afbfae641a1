"""What an extraction prompt costs per item: its own prompt tokens (after the shared prefix), its answer tokens,
and items/s with kirec's llama.cpp backend, on real items of a dataset (their full text, tags included).

On a small model the CPU is compute-bound, so items/s follows tokens per item; this measures the "compact
schema" and "answer format" levers by comparing prompts (and `--answer-formats`) on the same items, each timed in
the same process after a warm-up, and prints each field's answer quality beside the cost.

    .venv/bin/python benchmarks/bench_prompt_cost.py --dataset ml-latest-small --prompts movies \\
        benchmarks/prompts/movies-compact.toml --items 128 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--prompts", nargs="+", default=["movies"], help="prompt names or files")
    parser.add_argument("--items", type=int, default=128, help="items spread over the catalogue")
    parser.add_argument("--chunk", type=int, default=32, help="items per generate() call, as kirec extract sends")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep-answers", action="store_true", help="write every answer, by item id, to the JSON")
    parser.add_argument(
        "--answer-formats",
        nargs="+",
        default=[None],
        help="answer formats to compare, each overriding the prompts' own (json, lines); default: each prompt's",
    )
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "prompt-cost.json"))
    args = parser.parse_args()

    from engine import registry
    from engine.config import DataConfig
    from engine.data.preprocess import load_dataset
    from engine.extraction.backends.llama_cpp import LlamaCppBackend
    from engine.extraction.prompts import dataset_fields, load_prompt, validate_prompt
    from engine.extraction.quality import measure_quality, title_of

    dataset = load_dataset(DataConfig(dataset=args.dataset), cwd=ROOT)
    step = max(1, dataset.num_items // args.items)
    items = list(range(1, dataset.num_items + 1, step))[: args.items]
    backend = LlamaCppBackend(parallel=args.parallel)  # the answer format is chosen per call
    rows = []
    for answer_format, name in [(f, n) for f in args.answer_formats for n in args.prompts]:
        prompt = load_prompt(name)
        answer_format = answer_format or prompt.answer_format
        validate_prompt(prompt, dataset_fields(dataset.item_text[1:]))
        texts = [prompt.render(dataset.item_text[i]) for i in items]
        schema = prompt.json_schema()
        backend.generate(
            texts[:2], schema, system=prompt.system, answer_format=answer_format
        )  # evaluates this prompt's shared prefix
        system = registry.load("answer_format", answer_format).system_text(prompt.system)  # what the model reads
        tokens = [backend.tokenize_chat(t, system) for t in texts]
        prefix = len(os.path.commonprefix(tokens))  # what every item shares, evaluated once
        item_tokens = [len(t) - prefix for t in tokens]
        rates, outputs = [], []
        for _ in range(args.repeats):
            decoded_before = backend.tokens_decoded
            start = time.perf_counter()
            outputs = [
                out
                for c in range(0, len(texts), args.chunk)
                for out in backend.generate(
                    texts[c : c + args.chunk], schema, system=prompt.system, answer_format=answer_format
                )
            ]
            rates.append(len(texts) / (time.perf_counter() - start))
        answer_tokens_mean = (backend.tokens_decoded - decoded_before) / len(texts)  # as decoded, in its format
        answers = [_validated(prompt, o) for o in outputs]
        quality = measure_quality(
            answers,
            [title_of(dataset.item_text[i]) for i in items],
            prompt.schema.names,
            prompt.name,
        )
        row = {
            "prompt": prompt.name,
            "answer_format": answer_format,
            "source": str(prompt.source),
            "prompt_hash": prompt.content_hash,
            "items": len(texts),
            "prefix_tokens": prefix,
            "item_prompt_tokens_mean": statistics.mean(item_tokens),
            "answer_tokens_mean": answer_tokens_mean,
            "items_per_s_median": statistics.median(rates),
            "items_per_s_all": [round(r, 3) for r in rates],
            "valid": sum(a is not None for a in answers) / len(answers),
            "distinct_answers": len(set(outputs)),
            "quality": {
                f.name: {
                    "distinct": f.distinct,
                    "distinct_values": f.distinct_values,
                    "top_value": f.top_value,
                    "top_share": round(f.top_share, 3),
                    "title_copy_share": round(f.title_copy_share, 3),
                    "empty": f.empty,
                }
                for f in quality.fields
            },
            "enum_in_categories": _enum_in_categories(prompt, answers, [dataset.item_text[i] for i in items]),
            "sample": outputs[:3],
            "answers": dict(zip([dataset.item_ids[i] for i in items], outputs)) if args.keep_answers else None,
            "model": backend.fingerprint,
            "load_average": os.getloadavg(),
        }
        rows.append(row)
        print(
            f"{prompt.name:<16} {answer_format:<5} prefix {prefix} | per item {row['item_prompt_tokens_mean']:.1f} prompt +"
            f" {row['answer_tokens_mean']:.1f} answer tokens | {row['items_per_s_median']:.2f} items/s"
            f" {row['items_per_s_all']} | valid {row['valid']:.0%} | {row['distinct_answers']} distinct answers",
            flush=True,
        )
        for line in quality.lines()[1:]:
            print(line, flush=True)
        for name, share in row["enum_in_categories"].items():
            print(f"  {name}: {share:.0%} of the answers name a word of the item's categories", flush=True)
    backend.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "dataset": args.dataset,
                "cpus": os.cpu_count(),
                "parallel": args.parallel,
                "chunk": args.chunk,
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


def _enum_in_categories(prompt, answers, item_texts) -> dict[str, float]:
    """Per enum field: the share of valid answers whose value is a word of the item's own categories ("nails" for
    "Makeup, Nails, Nail Polish"; plural and singular alike). A lenient check that an answer is grounded in the
    item rather than the same value for all: where a path names two choices ("Skin Care, Face"), either counts."""
    out: dict[str, float] = {}
    for spec in prompt.schema.attributes:
        if spec.type != "enum":
            continue
        hits = asked = 0
        for answer, text in zip(answers, item_texts):
            categories = text.get("categories") or text.get("genres") or []
            if answer is None or not categories:
                continue
            words = {w.rstrip("s") for c in categories for w in re.findall(r"[a-z]+", str(c).lower())}
            asked += 1
            hits += str(answer[spec.name]).lower().rstrip("s") in words
        if asked:
            out[spec.name] = round(hits / asked, 3)
    return out


def _validated(prompt, raw: str):
    from engine.extraction.schema import OutputError, parse_json_object

    try:
        return prompt.schema.validate(parse_json_object(raw))
    except OutputError:
        return None


if __name__ == "__main__":
    main()
