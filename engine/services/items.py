"""Item use cases: what the project knows of an item (its text, popularity, the attributes each prompt
version extracted for it) and its nearest neighbours by cosine in a text encoder's space."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.events import EventSink, Status, ignore_events
from engine.services.errors import NotFoundError
from engine.services.progress import Progress, ProgressSink, ignore_progress


@dataclass
class ItemView:
    index: int
    item_id: str
    title: str
    fields: dict[str, Any]  # the item's text fields as the dataset gives them
    popularity: int  # training interactions
    popularity_rank: int  # 1 = most popular
    num_items: int
    attributes: list  # engine.extraction.cache.CachedExtraction per prompt version and model, newest first


def item_index(dataset, raw_id: str) -> int:
    if raw_id not in dataset.item_ids[1:]:
        raise NotFoundError(f"item '{raw_id}' is not in dataset '{dataset.name}' (after preprocessing)")
    return dataset.item_ids.index(raw_id)


def popularity_rank(popularity: np.ndarray, index: int) -> int:
    """1 + the number of items with more training interactions (row 0 is padding)."""
    return int((popularity[1:] > popularity[index]).sum()) + 1


def item_view(
    dataset, index: int, extraction_cache: Path | None = None, popularity: np.ndarray | None = None
) -> ItemView:
    """`extraction_cache` (a workspace's): where the attributes are read from; None: no attributes."""
    from engine.extraction.cache import item_text_hash
    from engine.services.extraction import item_history

    popularity = dataset.item_popularity() if popularity is None else popularity
    history = []
    if extraction_cache is not None:
        # raw ids repeat across datasets: only answers about this very text
        history = item_history(extraction_cache, dataset.item_ids[index], item_text_hash(dataset.item_text[index]))
    return ItemView(
        index,
        dataset.item_ids[index],
        dataset.title(index),
        dict(dataset.item_text[index]),
        int(popularity[index]),
        popularity_rank(popularity, index),
        dataset.num_items,
        history,
    )


def nearest(table: np.ndarray, item: int, k: int = 10) -> list[tuple[int, float]]:
    """The `k` rows of `table` (row 0 = padding, never returned) nearest to row `item` by cosine, nearest first."""
    return _top(_unit_rows(table), item, k)


def _unit_rows(table: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row, the padding, stays zero), float32."""
    vectors = np.asarray(table, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _top(unit: np.ndarray, item: int, k: int) -> list[tuple[int, float]]:
    similarity = unit[1:] @ unit[item]
    similarity[item - 1] = -np.inf  # not its own neighbour
    top = np.argsort(-similarity)[:k]
    return [(int(i) + 1, float(similarity[i])) for i in top]


class TextNeighbours:
    """Nearest neighbours in a text encoder's space over the items' raw text. The first call embeds the items the
    embedding cache lacks (on disk, keyed by encoder and text, so a dataset is embedded once per encoder), in
    chunks that report progress; later calls, in this process or the next, read the cache (no encoder is loaded)
    and then are one matrix product."""

    def __init__(self, dataset, embedding_cache: Path, encoder: str = "minilm", device: str = "cpu"):
        """`embedding_cache`: a workspace's embedding cache folder."""
        self.dataset, self.cache, self.encoder, self.device = dataset, Path(embedding_cache), encoder, device
        self._unit: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """The vectors are in memory: a lookup answers at once."""
        return self._unit is not None

    def of(
        self, item: int, k: int = 10, on_event: EventSink = ignore_events, on_progress: ProgressSink = ignore_progress
    ) -> list[tuple[int, float]]:
        return _top(self._vectors(on_event, on_progress), item, k)

    def _vectors(self, on_event: EventSink, on_progress: ProgressSink) -> np.ndarray:
        with self._lock:
            if self._unit is None:
                from engine.semantic import EmbeddingCache, embed_item_table, item_texts, make_encoder

                texts = item_texts(self.dataset.item_text, None, "raw").texts
                encoder = make_encoder(self.encoder, device=self.device)
                with EmbeddingCache(self.cache) as cache:
                    encoded = embed_missing(texts, encoder, cache, on_progress)
                    table, _ = embed_item_table(texts, encoder, cache)  # every text is cached now
                on_event(Status(f"embedding: {len(texts) - encoded} cached, {encoded} encoded"))
                self._unit = _unit_rows(table)
            return self._unit


EMBED_CHUNK = 256  # texts per progress report: a few seconds of MiniLM on two CPU cores


def embed_missing(texts: list[str], encoder, cache, on_progress: ProgressSink = ignore_progress) -> int:
    """Encodes (and caches) the distinct `texts` the cache lacks, EMBED_CHUNK at a time, reporting texts done
    of those missing, the time per text and the ETA; the encoder is loaded only when something is missing.
    Returns how many were encoded."""
    from engine.semantic import embed_texts
    from engine.semantic.embedding_cache import text_key

    unique = {text_key(t): t for t in texts}
    found = cache.get_many(encoder.fingerprint, list(unique))
    missing = [t for key, t in unique.items() if key not in found]
    if not missing:
        return 0
    on_progress(Progress("loading the text encoder", 0, len(missing), 0.0))
    _ = encoder.dim  # loads the model, so that its load time does not count as time per item
    start = time.perf_counter()
    for done in range(0, len(missing), EMBED_CHUNK):
        on_progress(Progress("embedding item texts", done, len(missing), time.perf_counter() - start))
        embed_texts(missing[done : done + EMBED_CHUNK], encoder, cache)
    on_progress(Progress("embedding item texts", len(missing), len(missing), time.perf_counter() - start))
    return len(missing)
