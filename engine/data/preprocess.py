"""From raw events to the `SequenceDataset` every later stage consumes, with an on-disk cache.

Steps, in order: keep ratings >= threshold -> sort each user's events by time (ties keep file order) ->
iterative k-core until nothing changes -> keep each user's last `max_history` events -> drop users with fewer
than 3 events (leave-one-out needs a training, a validation and a test item) -> dense indices, items 1..N in
order of first appearance in the file (0 is padding), users 0..U-1 likewise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import ConfigError, DataConfig
from engine.data import cache
from engine.data.dataset import RawInteractions, SequenceDataset
from engine.data.errors import DataError
from engine.data.formats import input_files, load_raw
from engine.data.root import find_dataset
from engine.events import EventSink, Status, ignore_events

# Bump when preprocessing changes what it produces: old cache entries then stop matching.
PREPROCESS_VERSION = 1
MIN_SEQUENCE_LENGTH = 3
PAD_ID = "[PAD]"


@dataclass(frozen=True)
class PreprocessOptions:
    rating_threshold: float | None = None  # keep ratings >= threshold; None keeps every event
    min_user_interactions: int = 5  # k-core: applied together with the item bound until both hold
    min_item_interactions: int = 5
    max_history: int | None = None  # keep each user's last N events

    def __post_init__(self) -> None:
        for name in ("min_user_interactions", "min_item_interactions"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name}: must be >= 0, got {getattr(self, name)}")
        if self.max_history is not None and self.max_history < MIN_SEQUENCE_LENGTH:
            raise ConfigError(
                f"data.max_history: must be >= {MIN_SEQUENCE_LENGTH} (leave-one-out needs {MIN_SEQUENCE_LENGTH} "
                f"interactions), got {self.max_history}"
            )

    @classmethod
    def from_config(cls, cfg: DataConfig) -> "PreprocessOptions":
        return cls(
            rating_threshold=cfg.rating_threshold,
            min_user_interactions=cfg.min_user_interactions,
            min_item_interactions=cfg.min_item_interactions,
            max_history=cfg.max_history,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes in order of first appearance, and the distinct values in that order."""
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values.tolist()), dtype=np.int64, count=len(values))
    return codes, [str(v) for v in index]


def _k_core(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Indices of the events that survive repeated removal of users and items with too few events."""
    keep = np.arange(len(users))
    while len(keep):
        u, i = users[keep], items[keep]
        mask = (np.bincount(u)[u] >= min_user) & (np.bincount(i)[i] >= min_item)
        if mask.all():
            break
        keep = keep[mask]
    return keep


def raw_fingerprint(raw: RawInteractions, options: PreprocessOptions) -> str:
    """A hash of the events, the item text and the options, for datasets built without files."""
    digest = hashlib.sha256(
        json.dumps({"version": PREPROCESS_VERSION, "name": raw.name, **options.to_dict()}, sort_keys=True).encode()
    )
    for column in (raw.users, raw.items):
        digest.update("\x1f".join(map(str, column.tolist())).encode() + b"\x1e")
    digest.update(np.ascontiguousarray(raw.timestamps, dtype=np.float64).tobytes())
    if raw.ratings is not None:
        digest.update(np.ascontiguousarray(raw.ratings, dtype=np.float64).tobytes())
    digest.update(json.dumps(raw.item_text, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def build_sequences(
    raw: RawInteractions, options: PreprocessOptions, fingerprint: str | None = None
) -> SequenceDataset:
    """Apply the preprocessing steps (module docstring). `fingerprint` defaults to a hash of `raw` and `options`."""
    user_codes, user_names = _factorize(raw.users)
    item_codes, item_names = _factorize(raw.items)

    events = np.arange(len(raw))
    if options.rating_threshold is not None and raw.ratings is not None:
        events = events[raw.ratings >= options.rating_threshold]
    # lexsort: last key is primary. Users, then time, then file position, so equal timestamps keep file order.
    events = events[np.lexsort((events, raw.timestamps[events], user_codes[events]))]
    events = events[
        _k_core(user_codes[events], item_codes[events], options.min_user_interactions, options.min_item_interactions)
    ]
    users, items = user_codes[events], item_codes[events]

    # Events are grouped by user code; rank each event from the end of its user's sequence.
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.r_[starts, len(users)])
    from_end = np.repeat(starts + lengths, lengths) - 1 - np.arange(len(users))
    keep = np.ones(len(users), dtype=bool)
    if options.max_history is not None:
        keep &= from_end < options.max_history
    kept_lengths = np.minimum(lengths, options.max_history) if options.max_history is not None else lengths
    keep &= np.repeat(kept_lengths >= MIN_SEQUENCE_LENGTH, lengths)
    users, items = users[keep], items[keep]
    if not len(users):
        raise DataError(
            f"dataset '{raw.name}' ({raw.source}): no user keeps {MIN_SEQUENCE_LENGTH} interactions after "
            f"preprocessing ({_describe(options)}); lower the thresholds"
        )

    # Codes are in order of first appearance, so sorted surviving codes give a deterministic dense order.
    kept_items = np.unique(items)
    item_index = np.searchsorted(kept_items, items) + 1
    kept_users = np.unique(users)
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])[1:]
    sequences = np.split(item_index.astype(np.int64), bounds)

    item_ids = [PAD_ID] + [item_names[c] for c in kept_items.tolist()]
    item_text = [{}] + [dict(raw.item_text.get(i, {})) for i in item_ids[1:]]
    return SequenceDataset(
        name=raw.name,
        item_ids=item_ids,
        user_ids=[user_names[c] for c in kept_users.tolist()],
        sequences=sequences,
        item_text=item_text,
        fingerprint=fingerprint or raw_fingerprint(raw, options),
        options=options.to_dict(),
    )


def _describe(options: PreprocessOptions) -> str:
    parts = [f"{options.min_user_interactions}/{options.min_item_interactions}-core (users/items)"]
    if options.rating_threshold is not None:
        parts.append(f"ratings >= {options.rating_threshold:g}")
    if options.max_history is not None:
        parts.append(f"last {options.max_history} per user")
    return ", ".join(parts)


def default_cache_dir(cfg: DataConfig, cwd: Path) -> Path:
    """`data.cache_dir` in the workspace `cwd` (engine.workspace has the rule)."""
    from engine.workspace import Workspace

    return Workspace.at(cwd, dataset_cache=cfg.cache_dir).dataset_cache


def load_dataset(
    cfg: DataConfig, cwd: Path | None = None, on_event: EventSink | None = None, cache_dir: Path | None = None
) -> SequenceDataset:
    """Find `cfg.dataset` (a relative path or data root inside `cwd`, default the current folder), then return
    it preprocessed: from the cache when the input files and options are unchanged, otherwise parsed,
    preprocessed and cached. `cache_dir`: the cache folder (a run's `Workspace.dataset_cache`); None:
    `data.cache_dir` inside `cwd`."""
    emit = on_event or ignore_events
    cwd = (cwd or Path.cwd()).resolve()
    options = PreprocessOptions.from_config(cfg)
    spec, folder = find_dataset(cfg.dataset, cfg.data_root, cwd)
    files = input_files(folder, spec.format)
    key = cache.content_key(
        {"version": PREPROCESS_VERSION, "name": spec.name, "format": spec.format, "options": options.to_dict()}, files
    )
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir(cfg, cwd)
    try:
        cached = cache.load(cache_dir, spec.name, key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        emit(Status(f"ignoring a damaged cache entry for {spec.name} ({exc}); rebuilding", level="warning"))
        cached = None
    if cached is not None:
        emit(Status(f"cache hit: {spec.name} ({cached.num_users} users, {cached.num_items} items)"))
        _warn_textless(cached, emit)
        return cached

    emit(Status(f"loading {spec.name} from {folder} ({spec.format})"))
    started = time.perf_counter()
    raw = load_raw(folder, spec.format, spec.name)
    if options.rating_threshold is not None and raw.ratings is None:
        emit(Status(f"{spec.name} has no ratings: rating_threshold {options.rating_threshold:g} ignored", "warning"))
    ds = build_sequences(raw, options, fingerprint=key)
    emit(
        Status(
            f"preprocessed {spec.name}: {ds.num_users} users, {ds.num_items} items, {ds.num_interactions} interactions "
            f"({_describe(options)}) in {time.perf_counter() - started:.1f}s"
        )
    )
    try:
        cache.save(ds, cache_dir)
    except OSError as exc:  # a read-only cache must not stop a run
        emit(Status(f"could not write the dataset cache in {cache_dir}: {exc}", level="warning"))
    _warn_textless(ds, emit)
    return ds


def _warn_textless(ds: SequenceDataset, emit: EventSink) -> None:
    """Items the interactions name but the items file does not describe are not an error (an ID model needs no
    text), but the knowledge stage cannot describe them: say how many."""
    textless = len(ds.textless_items())
    if textless:
        emit(
            Status(
                f"{ds.name}: {textless} of {ds.num_items} items have no text (not in its items file); "
                "the LLM is not asked about them and they get a zero text embedding",
                level="warning",
            )
        )
