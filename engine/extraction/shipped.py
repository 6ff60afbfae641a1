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

from engine.data.errors import DataFormatError
from engine.extraction.cache import STATUS_FAILED, STATUS_OK, ExtractionCache, ExtractionRecord, item_text_hash

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "prompts" / "extractions"
FORMAT_VERSION = 1


def export_extractions(cache: ExtractionCache, dataset, prompt, model: str, path: str | Path) -> int:
    """Write every cached answer of (model, prompt) for the dataset's items to `path`; returns the row count."""
    hashes = {item_text_hash(dataset.item_text[i]): dataset.item_ids[i] for i in range(1, dataset.num_items + 1)}
    found = cache.lookup(model, prompt.content_hash, hashes)
    header = {
        "kirec_extractions": FORMAT_VERSION,
        "model": model,
        "prompt_hash": prompt.content_hash,
        "prompt_name": prompt.name,
        "dataset": dataset.name,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(header) + "\n")
        for item_hash in sorted(found):
            row = found[item_hash]
            fh.write(
                json.dumps(
                    {
                        "item_id": row.item_id,
                        "item_hash": item_hash,
                        "attributes": row.attributes,
                        "raw_output": row.raw_output,
                        "status": row.status,
                        "attempts": row.attempts,
                        "error": row.error,
                    },
                    ensure_ascii=False,
                    sort_keys=True,
                )
                + "\n"
            )
    return len(found)


class ShippedExtractionsError(DataFormatError):
    """A shipped extractions file that cannot be read; the message names the file and the line."""


ROW_FIELDS = ("item_id", "item_hash", "attributes", "raw_output", "status", "attempts")


def _header(path: Path, line: str) -> dict:
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("kirec_extractions") != FORMAT_VERSION:
        raise ShippedExtractionsError(f"{path} line 1: not a kirec extractions header (version {FORMAT_VERSION})")
    return header


def _record(path: Path, number: int, line: str) -> ExtractionRecord:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ShippedExtractionsError(f"{path} line {number}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ShippedExtractionsError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
    missing = [name for name in ROW_FIELDS if name not in row]
    if missing:
        raise ShippedExtractionsError(f"{path} line {number}: missing {', '.join(missing)}")
    if not isinstance(row["item_hash"], str) or not (row["attributes"] is None or isinstance(row["attributes"], dict)):
        raise ShippedExtractionsError(
            f"{path} line {number}: item_hash must be a string and attributes an object or null"
        )
    if row["status"] not in (STATUS_OK, STATUS_FAILED):
        raise ShippedExtractionsError(
            f"{path} line {number}: status {row['status']!r} is neither {STATUS_OK!r} nor {STATUS_FAILED!r}"
        )
    return ExtractionRecord(
        row["item_id"],
        row["item_hash"],
        row["attributes"],
        row["raw_output"],
        row["status"],
        row["attempts"],
        row.get("error"),
    )


def _shipped_files(folder: Path, model: str, prompt_hash: str) -> Iterable[tuple[Path, dict]]:
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            header = _header(path, fh.readline())
        if header.get("model") == model and header.get("prompt_hash") == prompt_hash:
            yield path, header


def read_shipped_extractions(path: Path) -> tuple[dict, list[ExtractionRecord]]:
    """The header and rows of one shipped file; raises ShippedExtractionsError naming the first bad line."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        header = _header(path, fh.readline())
        records = [_record(path, number, line) for number, line in enumerate(fh, start=2) if line.strip()]
    return header, records


def import_shipped_extractions(cache: ExtractionCache, model: str, prompt_hash: str, folder: Path | None = None) -> int:
    """Copy shipped answers of (model, prompt) from `folder` (default SHIPPED_DIR) into the cache where it has none;
    returns how many were added. Every matching file is read and checked before anything is written, so a bad line
    leaves the cache as it was."""
    folder = Path(folder) if folder is not None else SHIPPED_DIR
    files = [(header, read_shipped_extractions(path)[1]) for path, header in _shipped_files(folder, model, prompt_hash)]
    added = 0
    for header, records in files:
        present = cache.lookup(model, prompt_hash, (r.item_hash for r in records))
        missing = [r for r in records if r.item_hash not in present]
        if missing:
            cache.put_many(model, prompt_hash, header.get("prompt_name", ""), missing)
            added += len(missing)
    return added
