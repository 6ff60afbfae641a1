from __future__ import annotations

import numpy as np
import pytest

from engine.data import SequenceDataset, dataset_stats


def test_stats_on_a_hand_built_dataset():
    ds = SequenceDataset(
        name="hand",
        item_ids=["[PAD]", "a", "b", "c", "d"],
        user_ids=["u", "v", "w"],
        sequences=[np.array([1, 2, 3]), np.array([2, 3, 4, 1]), np.array([4, 4, 1, 2, 3, 1])],
        item_text=[{}, {"title": "A", "tags": ["x"]}, {"title": " "}, {"title": "C", "tags": []}, {"brand": "D"}],
        fingerprint="f",
    )
    stats = dataset_stats(ds)
    assert (stats["users"], stats["items"], stats["interactions"]) == (3, 4, 13)
    assert stats["mean_sequence_length"] == pytest.approx(13 / 3)
    assert stats["median_sequence_length"] == 4.0
    assert (stats["min_sequence_length"], stats["max_sequence_length"]) == (3, 6)
    assert stats["density"] == pytest.approx(13 / 12)
    assert stats["text_coverage"] == {"brand": 0.25, "tags": 0.25, "title": 0.5}


def test_a_datasets_repr_names_its_size_not_its_contents():
    # Textual names every worker by its arguments' reprs: a repr that printed each sequence and item text cost the
    # Items screen tens of milliseconds per search keystroke on ml-latest-small.
    n = 5000
    ds = SequenceDataset(
        name="big",
        item_ids=["[PAD]"] + [f"i{i}" for i in range(n)],
        user_ids=[f"u{u}" for u in range(n)],
        sequences=[np.arange(1, 4) for _ in range(n)],
        item_text=[{}] + [{"title": f"item number {i}"} for i in range(n)],
        fingerprint="0123456789abcdef",
    )
    text = repr(ds)
    assert text == "SequenceDataset(name='big', users=5000, items=5000, fingerprint='0123456789ab')"
