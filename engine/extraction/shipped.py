"""Extractions shipped with the project (`prompts/extractions/*.jsonl`), so the embedded default needs no LLM time.

SmolLM2 on two CPU cores cannot extract the default dataset's ~3,650 movies inside the five minutes a first
`kirec run` may take, so the project ships the answers `kirec extract` produced, keyed exactly like the cache
(model fingerprint, prompt hash, item text hash). Importing them only fills what the cache lacks; an edited prompt
or another model has another key and is extracted for real. A test re-extracts a sample and compares.

File format: a header line {"kirec_extractions": 1, "model", "prompt_hash", "prompt_name", "dataset"}, then one line
per item {"item_id", "item_hash", "attributes", "raw_output", "status", "attempts", "error"}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from engine.extraction.cache import ExtractionCache, ExtractionRecord, item_text_hash

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "prompts" / "extractions"
FORMAT_VERSION = 1


def export_extractions(cache: ExtractionCache, dataset, prompt, model: str, path: str | Path) -> int:
    """Write every cached answer of (model, prompt) for the dataset's items to `path`; returns the row count."""
    hashes = {item_text_hash(dataset.item_text[i]): dataset.item_ids[i] for i in range(1, dataset.num_items + 1)}
    found = cache.lookup(model, prompt.content_hash, hashes)
    header = {"kirec_extractions": FORMAT_VERSION, "model": model, "prompt_hash": prompt.content_hash,
              "prompt_name": prompt.name, "dataset": dataset.name}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(header) + "\n")
        for item_hash in sorted(found):
            row = found[item_hash]
            fh.write(json.dumps({
                "item_id": row.item_id, "item_hash": item_hash, "attributes": row.attributes,
                "raw_output": row.raw_output, "status": row.status, "attempts": row.attempts, "error": row.error,
            }, ensure_ascii=False, sort_keys=True) + "\n")
    return len(found)


def _shipped_files(folder: Path, model: str, prompt_hash: str) -> Iterable[tuple[Path, dict]]:
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            try:
                header = json.loads(fh.readline())
            except json.JSONDecodeError:
                raise ValueError(f"{path} line 1: not a kirec extractions header") from None
        if header.get("model") == model and header.get("prompt_hash") == prompt_hash:
            yield path, header


def import_shipped_extractions(cache: ExtractionCache, model: str, prompt_hash: str, folder: Path = SHIPPED_DIR) -> int:
    """Copy shipped answers of (model, prompt) into the cache where it has none; returns how many were added."""
    added = 0
    for path, header in _shipped_files(folder, model, prompt_hash):
        records = []
        with path.open(encoding="utf-8") as fh:
            next(fh)
            for number, line in enumerate(fh, start=2):
                try:
                    row = json.loads(line)
                    records.append(ExtractionRecord(row["item_id"], row["item_hash"], row["attributes"],
                                                    row["raw_output"], row["status"], row["attempts"], row.get("error")))
                except (json.JSONDecodeError, KeyError) as exc:
                    raise ValueError(f"{path} line {number}: bad extraction row ({exc})") from None
        present = cache.lookup(model, prompt_hash, (r.item_hash for r in records))
        missing = [r for r in records if r.item_hash not in present]
        if missing:
            cache.put_many(model, prompt_hash, header.get("prompt_name", ""), missing)
            added += len(missing)
    return added
