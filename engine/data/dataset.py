"""The two data shapes every stage agrees on.

`RawInteractions` is what a format loader returns: events with original ids, plus each item's text fields.
`SequenceDataset` is what preprocessing returns and what models, training, evaluation, extraction and the
front ends consume: dense item indices (1..num_items, 0 is padding), one chronological sequence per user,
and a leave-one-out split (last item test, second to last validation, the rest training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PAD = 0  # item index 0 is padding in every sequence and embedding table


@dataclass
class RawInteractions:
    """Events as a loader read them. Arrays are aligned; `timestamps` orders events within a user
    (for files without timestamps, the position in the file). `ratings` is None for implicit data."""

    name: str
    users: np.ndarray  # object array of str
    items: np.ndarray  # object array of str
    timestamps: np.ndarray  # float64
    ratings: np.ndarray | None = None  # float64
    item_text: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw item id -> text fields
    source: str = ""  # folder or file it came from, for messages

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class SequenceDataset:
    name: str
    item_ids: list[str]  # item_ids[i] is the raw id of item index i; item_ids[0] = "[PAD]"
    user_ids: list[str]  # user_ids[u] is the raw id of user u (0-based)
    sequences: list[np.ndarray]  # sequences[u]: int64 item indices in time order, whole history
    item_text: list[dict[str, Any]]  # aligned with item_ids; item_text[0] = {}
    fingerprint: str  # hash of inputs and preprocessing options
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        """Real items, excluding padding; valid item indices are 1..num_items."""
        return len(self.item_ids) - 1

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    def __repr__(self) -> str:
        # The generated repr walks every user's sequence and every item's text: tens of milliseconds on a small
        # dataset, seconds on a large one, paid wherever a dataset is shown (Textual names each worker by
        # its arguments' reprs, a traceback's locals, a debugger).
        return (
            f"SequenceDataset(name={self.name!r}, users={self.num_users}, items={self.num_items}, "
            f"fingerprint={self.fingerprint[:12]!r})"
        )

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    # Leave-one-out split. Every user has at least 3 interactions after preprocessing.
    def train_sequence(self, user: int) -> np.ndarray:
        return self.sequences[user][:-2]

    def valid_history(self, user: int) -> np.ndarray:
        return self.sequences[user][:-2]

    def valid_target(self, user: int) -> int:
        return int(self.sequences[user][-2])

    def test_history(self, user: int) -> np.ndarray:
        return self.sequences[user][:-1]

    def test_target(self, user: int) -> int:
        return int(self.sequences[user][-1])

    def item_popularity(self) -> np.ndarray:
        """Interaction counts per item index over the training part only (no leakage from valid/test)."""
        counts = np.zeros(len(self.item_ids), dtype=np.int64)
        for u in range(self.num_users):
            np.add.at(counts, self.train_sequence(u), 1)
        return counts

    def textless_items(self) -> list[int]:
        """Item indices with no text at all (no entry in the items file): only their ID describes them."""
        return [i for i in range(1, len(self.item_text)) if not self.item_text[i]]

    def title(self, item: int) -> str:
        text = self.item_text[item] if 0 <= item < len(self.item_text) else {}
        return str(text.get("title") or self.item_ids[item])
