"""Preprocessing: thresholds, ordering, iterative k-core, indices, truncation, the split, and the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.config import ConfigError, DataConfig
from engine.data import DataError, PreprocessOptions, RawInteractions, build_sequences, load_dataset, preprocess
from engine.events import Status


def raw_from(rows: list[tuple], ratings: list[float] | None = None, item_text=None) -> RawInteractions:
    """rows: (user, item, timestamp)."""
    return RawInteractions(
        name="hand",
        users=np.array([r[0] for r in rows], dtype=object),
        items=np.array([r[1] for r in rows], dtype=object),
        timestamps=np.array([r[2] for r in rows], dtype=np.float64),
        ratings=None if ratings is None else np.array(ratings, dtype=np.float64),
        item_text=item_text or {},
    )


def as_ids(ds) -> dict[str, list[str]]:
    return {ds.user_ids[u]: [ds.item_ids[i] for i in seq] for u, seq in enumerate(ds.sequences)}


NO_CORE = PreprocessOptions(min_user_interactions=0, min_item_interactions=0)


def test_iterative_k_core_needs_more_than_one_pass():
    # 2-core. Pass 1 drops item z (1 event); that leaves user c with 1 event, so pass 2 drops c; that leaves
    # item y with 1 event, so pass 3 drops y; that leaves user b with 1 event (x), pass 4 drops b.
    rows = [
        ("a", "x", 1),
        ("a", "w", 2),
        ("d", "x", 3),
        ("d", "w", 4),
        ("a", "x", 9),
        ("d", "w", 10),
        ("b", "x", 5),
        ("b", "y", 6),
        ("c", "y", 7),
        ("c", "z", 8),
    ]
    options = PreprocessOptions(min_user_interactions=2, min_item_interactions=2, max_history=None)
    # a single filtering pass would keep b and c: the data needs iteration
    users, items = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    one_pass = [r for r in rows if (users == r[0]).sum() >= 2 and (items == r[1]).sum() >= 2]
    assert {r[0] for r in one_pass} >= {"b", "c"}
    ds = build_sequences(raw_from(rows), options)
    assert as_ids(ds) == {"a": ["x", "w", "x"], "d": ["x", "w", "w"]}
    counts = np.bincount(np.concatenate(ds.sequences))
    assert counts[1:].min() >= 2 and min(len(s) for s in ds.sequences) >= 2


def test_chronological_order_with_stable_ties():
    rows = [("u", "c", 5), ("u", "a", 1), ("u", "b", 5), ("u", "d", 5), ("u", "e", 0)]
    ds = build_sequences(raw_from(rows), NO_CORE)
    assert as_ids(ds) == {"u": ["e", "a", "c", "b", "d"]}  # equal timestamps keep the file order c, b, d


def test_dense_indices_follow_first_appearance_and_pad_is_zero():
    rows = [("u2", "q", 1), ("u1", "p", 1), ("u1", "q", 2), ("u2", "r", 2), ("u1", "r", 3), ("u2", "p", 3)]
    ds = build_sequences(raw_from(rows, item_text={"p": {"title": "P"}}), NO_CORE)
    assert ds.item_ids == ["[PAD]", "q", "p", "r"] and ds.user_ids == ["u2", "u1"]
    assert ds.item_text[0] == {} and ds.item_text[2] == {"title": "P"} and ds.item_text[1] == {}
    assert ds.sequences[0].tolist() == [1, 3, 2] and ds.sequences[0].dtype == np.int64
    assert ds.num_items == 3 and ds.num_users == 2 and ds.num_interactions == 6


def test_rating_threshold_keeps_ratings_at_or_above():
    rows = [("u", "a", 1), ("u", "b", 2), ("u", "c", 3), ("u", "d", 4)]
    ds = build_sequences(
        raw_from(rows, ratings=[4.0, 3.0, 3.5, 5.0]),
        PreprocessOptions(rating_threshold=3.5, min_user_interactions=0, min_item_interactions=0),
    )
    assert as_ids(ds) == {"u": ["a", "c", "d"]}


def test_max_history_keeps_last_events_and_short_users_are_dropped():
    rows = [("long", i, t) for t, i in enumerate("abcdef")] + [("short", "a", 0), ("short", "b", 1)]
    ds = build_sequences(
        raw_from(rows), PreprocessOptions(min_user_interactions=0, min_item_interactions=0, max_history=4)
    )
    assert as_ids(ds) == {"long": ["c", "d", "e", "f"]}  # "short" has 2 < 3 events
    assert ds.item_ids == ["[PAD]", "c", "d", "e", "f"]  # items only the dropped events had are gone


def test_leave_one_out_split():
    rows = [("u", i, t) for t, i in enumerate("abcde")]
    ds = build_sequences(raw_from(rows), NO_CORE)
    index = {item: i for i, item in enumerate(ds.item_ids)}
    assert ds.train_sequence(0).tolist() == [index[c] for c in "abc"]
    assert ds.valid_history(0).tolist() == [index[c] for c in "abc"] and ds.valid_target(0) == index["d"]
    assert ds.test_history(0).tolist() == [index[c] for c in "abcd"] and ds.test_target(0) == index["e"]
    assert ds.item_popularity().tolist() == [0, 1, 1, 1, 0, 0]  # training part only


def test_everything_filtered_is_a_clear_error():
    with pytest.raises(DataError, match="no user keeps 3 interactions"):
        build_sequences(raw_from([("u", "a", 1), ("u", "b", 2)]), PreprocessOptions())


def test_options_validate_and_come_from_config():
    with pytest.raises(ConfigError, match="data.max_history"):
        PreprocessOptions(max_history=2)
    with pytest.raises(ConfigError, match="data.min_user_interactions"):
        PreprocessOptions(min_user_interactions=-1)
    cfg = DataConfig(rating_threshold=4.0, min_user_interactions=3, min_item_interactions=2, max_history=50)
    assert PreprocessOptions.from_config(cfg) == PreprocessOptions(4.0, 3, 2, 50)


def test_fingerprint_is_deterministic_and_depends_on_data_and_options():
    rows = [("u", i, t) for t, i in enumerate("abcd")]
    first, second = build_sequences(raw_from(rows), NO_CORE), build_sequences(raw_from(rows), NO_CORE)
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 64
    assert build_sequences(raw_from(rows[::-1]), NO_CORE).fingerprint != first.fingerprint
    other = PreprocessOptions(min_user_interactions=1, min_item_interactions=0)
    assert build_sequences(raw_from(rows), other).fingerprint != first.fingerprint


# --- load_dataset and its cache ---------------------------------------------------------------------------------


def make_generic(folder: Path, users: int = 6, length: int = 5) -> Path:
    folder.mkdir(parents=True)
    lines = ["user,item,timestamp"]
    for u in range(users):
        lines += [f"u{u},i{(u + k) % 7},{k}" for k in range(length)]
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    (folder / "items.jsonl").write_text('{"id": "i1", "title": "One"}\n')
    return folder


def config(tmp_path: Path, **overrides) -> DataConfig:
    values = dict(
        dataset="shop",
        data_root=str(tmp_path / "data"),
        cache_dir=str(tmp_path / "cache"),
        min_user_interactions=2,
        min_item_interactions=2,
    )
    values.update(overrides)
    return DataConfig(**values)


def test_load_dataset_caches_and_second_load_does_not_parse(tmp_path, monkeypatch):
    make_generic(tmp_path / "data" / "shop")
    messages: list[str] = []
    first = load_dataset(config(tmp_path), cwd=tmp_path, on_event=lambda e: messages.append(e.message))
    assert any(m.startswith("loading shop") for m in messages)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1 and len(list((tmp_path / "cache").glob("*.json"))) == 1

    def fail(*_args, **_kwargs):
        raise AssertionError("the loader ran on a cache hit")

    monkeypatch.setattr(preprocess, "load_raw", fail)
    events: list[Status] = []
    second = load_dataset(config(tmp_path), cwd=tmp_path, on_event=events.append)
    assert [e.message.split(":")[0] for e in events if e.level == "info"] == ["cache hit"]
    assert second.fingerprint == first.fingerprint
    assert second.item_ids == first.item_ids and second.user_ids == first.user_ids
    assert second.item_text == first.item_text and second.options == first.options
    assert [s.tolist() for s in second.sequences] == [s.tolist() for s in first.sequences]

    # an option change or an edited input file is a miss, so the (failing) loader runs
    with pytest.raises(AssertionError, match="loader ran"):
        load_dataset(config(tmp_path, min_item_interactions=3), cwd=tmp_path)
    with (tmp_path / "data" / "shop" / "interactions.csv").open("a") as fh:
        fh.write("u0,i3,99\n")
    with pytest.raises(AssertionError, match="loader ran"):
        load_dataset(config(tmp_path), cwd=tmp_path)


def test_cache_key_changes_with_options_and_is_stable(tmp_path):
    make_generic(tmp_path / "data" / "shop")
    a = load_dataset(config(tmp_path), cwd=tmp_path)
    b = load_dataset(config(tmp_path, max_history=4), cwd=tmp_path)
    c = load_dataset(config(tmp_path, cache_dir=str(tmp_path / "other-cache")), cwd=tmp_path)
    assert a.fingerprint != b.fingerprint and a.fingerprint == c.fingerprint
    assert max(len(s) for s in b.sequences) == 4 and b.options["max_history"] == 4


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    make_generic(tmp_path / "data" / "shop")
    first = load_dataset(config(tmp_path), cwd=tmp_path)
    (npz,) = (tmp_path / "cache").glob("*.npz")
    npz.write_bytes(b"not a zip")
    events: list[Status] = []
    again = load_dataset(config(tmp_path), cwd=tmp_path, on_event=events.append)
    assert events[0].level == "warning" and "damaged cache" in events[0].message
    assert [s.tolist() for s in again.sequences] == [s.tolist() for s in first.sequences]


def test_default_cache_dir_is_under_cwd(tmp_path):
    make_generic(tmp_path / "data" / "shop")
    load_dataset(config(tmp_path, cache_dir=None, data_root=None), cwd=tmp_path)
    assert len(list((tmp_path / ".cache" / "datasets").glob("shop-*.json"))) == 1


def test_threshold_on_implicit_data_warns(tmp_path):
    make_generic(tmp_path / "data" / "shop")
    events: list[Status] = []
    load_dataset(config(tmp_path, rating_threshold=4.0), cwd=tmp_path, on_event=events.append)
    assert any(e.level == "warning" and "no ratings" in e.message for e in events)


def test_items_without_text_are_one_warning_with_their_count_on_every_load(tmp_path):
    make_generic(tmp_path / "data" / "shop")  # items.jsonl describes i1 only
    for _ in range(2):  # parsed, then from the cache
        events: list[Status] = []
        ds = load_dataset(config(tmp_path), cwd=tmp_path, on_event=events.append)
        warnings = [e.message for e in events if e.level == "warning"]
        textless = ds.textless_items()
        assert len(textless) == ds.num_items - 1 and ds.item_ids.index("i1") not in textless
        assert warnings == [
            f"shop: {ds.num_items - 1} of {ds.num_items} items have no text (not in its items file); "
            "the LLM is not asked about them and they get a zero text embedding"
        ]


def test_a_fully_described_dataset_has_no_text_warning(tmp_path):
    folder = make_generic(tmp_path / "data" / "shop")
    ids = {line.split(",")[1] for line in (folder / "interactions.csv").read_text().splitlines()[1:]}
    (folder / "items.jsonl").write_text("".join(f'{{"id": "{i}", "title": "T {i}"}}\n' for i in sorted(ids)))
    events: list[Status] = []
    load_dataset(config(tmp_path), cwd=tmp_path, on_event=events.append)
    assert not [e for e in events if e.level == "warning"]
