"""The real datasets in ../shared/data: published statistics must come out exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import DataConfig
from engine.data import dataset_stats, find_dataset, load_dataset

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared(name: str) -> Path:
    folder = SHARED / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here")
    return folder


def test_amazon_beauty_5core_matches_the_literature(tmp_path):
    """Published statistics, and a second load served from the preprocessing cache (its speed:
    benchmarks/bench_data.py; wall-clock limits do not belong in a test on a shared machine)."""
    shared("amazon-beauty")
    cfg = DataConfig(dataset="amazon-beauty", data_root=str(SHARED), cache_dir=str(tmp_path))
    cold_events: list = []
    ds = load_dataset(cfg, cwd=tmp_path, on_event=cold_events.append)
    assert not any(e.message.startswith("cache hit") for e in cold_events)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (22363, 12101, 198502)
    assert ds.item_ids[0] == "[PAD]" and ds.item_text[0] == {}
    assert all(len(s) >= 5 for s in ds.sequences)
    stats = dataset_stats(ds)
    # README: titles for 12,094 items, brand null for 4,627
    assert stats["text_coverage"]["title"] == pytest.approx(12094 / 12101)
    assert stats["text_coverage"]["brand"] == pytest.approx((12101 - 4627) / 12101)
    assert stats["text_coverage"]["categories"] == 1.0
    assert stats["density"] == pytest.approx(198502 / (22363 * 12101))

    warm_events: list = []
    again = load_dataset(cfg, cwd=tmp_path, on_event=warm_events.append)
    assert [e.message for e in warm_events] == ["cache hit: amazon-beauty (22363 users, 12101 items)"]
    assert again.fingerprint == ds.fingerprint
    assert [s.tolist() for s in again.sequences] == [s.tolist() for s in ds.sequences]
    assert again.item_ids == ds.item_ids and again.user_ids == ds.user_ids and again.item_text == ds.item_text


def test_ml_latest_small_loads_with_every_user_kept(tmp_path):
    shared("ml-latest-small")
    cfg = DataConfig(dataset="ml-latest-small", cache_dir=str(tmp_path))
    spec, folder = find_dataset("ml-latest-small", None, cwd=tmp_path)  # found through the default roots
    assert spec.format == "movielens-csv" and folder.name == "ml-latest-small" and (folder / "ratings.csv").is_file()
    ds = load_dataset(cfg, cwd=tmp_path)
    assert ds.num_users == 610
    assert min(len(s) for s in ds.sequences) >= 5  # 5-core; so leave-one-out always has its 3
    counts = {}
    for seq in ds.sequences:
        for item in seq.tolist():
            counts[item] = counts.get(item, 0) + 1
    assert min(counts.values()) >= 5 and len(counts) == ds.num_items
    toy_story = ds.item_ids.index("1")
    assert ds.item_text[toy_story]["title"] == "Toy Story (1995)" and ds.item_text[toy_story]["year"] == "1995"
    assert "Animation" in ds.item_text[toy_story]["genres"] and ds.item_text[toy_story]["tags"]


def test_ml_100k_recbole_copy_loads(tmp_path):
    shared("ml-100k")
    ds = load_dataset(
        DataConfig(
            dataset="ml-100k",
            data_root=str(SHARED),
            cache_dir=str(tmp_path),
            min_user_interactions=0,
            min_item_interactions=0,
        ),
        cwd=tmp_path,
    )
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (943, 1682, 100000)
    assert ds.item_text[ds.item_ids.index("1")] == {
        "title": "Toy Story",
        "year": "1995",
        "genres": ["Animation", "Children's", "Comedy"],
    }
