"""KIRec against the ID-only baseline and its neighbours (LLMInit-style `init`, LLMEmb-style `semantic-only`),
same backbone, same budget, several seeds; mean ± std of full-ranking HR@10 / NDCG@10, extra time and parameters.

    .venv/bin/python benchmarks/bench_knowledge.py --dataset amazon-beauty --seeds 1 2 3 --text raw attributes
    .venv/bin/python benchmarks/bench_knowledge.py --dataset ml-latest-small --seeds 1 2 3

`--text attributes` needs the LLM's answers for every item (kirec extract first; Amazon Beauty's 12,101 items take
about two hours with SmolLM2 on two CPU cores); `raw` embeds the item text itself.
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
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--text", nargs="+", default=["raw"], choices=["raw", "attributes", "both"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--set", nargs="*", default=[], help="extra KEY=VALUE for every run (e.g. model.backbone=gru4rec)")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "knowledge.json"))
    args = parser.parse_args()
    extra = dict(pair.split("=", 1) for pair in args.set)
    variants = {}
    for method in args.methods:
        texts = ["-"] if method == "id" else args.text
        for text in texts:
            label = method if method == "id" else f"{method}/{text}"
            settings = {**METHODS[method], **extra}
            if method != "id":
                settings["knowledge.embed_text"] = text
            variants[label] = settings
    run_variants(variants, args.dataset, args.seeds, Path(args.out))


if __name__ == "__main__":
    main()
