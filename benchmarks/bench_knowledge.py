"""KIRec against the ID-only baseline and its neighbours (LLMInit-style `init`, LLMEmb-style `semantic-only`),
same backbone, same budget, several seeds; mean ± std of full-ranking HR@10 / NDCG@10, extra time and parameters.

    .venv/bin/python benchmarks/bench_knowledge.py --dataset amazon-beauty --seeds 1 2 3 --text raw attributes
    .venv/bin/python benchmarks/bench_knowledge.py --dataset ml-latest-small --seeds 1 2 3

`--text attributes` needs the LLM's answers for every item (kirec extract first; Amazon Beauty's 12,101 items take
about 80 minutes with SmolLM2 on two CPU cores); `raw` embeds the item text itself. On a machine without the LLM
or the encoder (a GPU box), give each text's table made by `kirec embed --export`:

    python3 benchmarks/bench_knowledge.py --text raw attributes --table raw=raw.npy attributes=attr.npy \
        --set train.device=cuda train.num_threads=2 --jobs 6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import ROOT, run_variants  # noqa: E402

METHODS = {
    "id": {"knowledge.method": "id"},
    "init": {"knowledge.method": "init", "knowledge.reduction": "pca"},
    "semantic-only": {"knowledge.method": "semantic-only", "knowledge.reduction": "adapter-mlp"},
    "kirec-add": {"knowledge.method": "kirec", "knowledge.fusion": "add"},
    "kirec-concat": {"knowledge.method": "kirec", "knowledge.fusion": "concat"},
    "kirec-gate": {"knowledge.method": "kirec", "knowledge.fusion": "gate"},
    "kirec-gated-add": {"knowledge.method": "kirec", "knowledge.fusion": "gated-add"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--text", nargs="+", default=["raw"], choices=["raw", "attributes", "both"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--set", nargs="*", default=[], help="extra KEY=VALUE for every run (e.g. model.backbone=gru4rec)"
    )
    parser.add_argument(
        "--table",
        nargs="*",
        default=[],
        metavar="TEXT=FILE",
        help="read a text's item vectors from a .npy made by kirec embed --export",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (quality sweeps; time with 1)")
    parser.add_argument("--db", help="the runs database (default: bench-runs.db beside --out)")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "knowledge.json"))
    args = parser.parse_args()
    extra = dict(pair.split("=", 1) for pair in args.set)
    tables = dict(pair.split("=", 1) for pair in args.table)
    variants = {}
    for method in args.methods:
        texts = ["-"] if method == "id" else args.text
        for text in texts:
            label = method if method == "id" else f"{method}/{text}"
            settings = {**METHODS[method], **extra}
            if method != "id":
                settings["knowledge.embed_text"] = text
                if text in tables:
                    settings["knowledge.semantic_table"] = tables[text]
            variants[label] = settings
    run_variants(variants, args.dataset, args.seeds, Path(args.out), args.jobs, args.db)


if __name__ == "__main__":
    main()
