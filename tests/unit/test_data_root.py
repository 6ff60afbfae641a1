"""Data roots and dataset resolution, including the one-line message when a dataset is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine.data import DataError, DatasetNotFoundError, candidate_roots, find_dataset, get_spec, list_datasets

REPO = Path(engine.__file__).resolve().parents[1]


def test_explicit_root_is_the_only_candidate(tmp_path):
    assert candidate_roots(str(tmp_path / "mine"), cwd=tmp_path) == [tmp_path / "mine"]
    assert candidate_roots("rel", cwd=tmp_path) == [tmp_path.resolve() / "rel"]


def test_default_roots_in_order_and_deduplicated(tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    assert candidate_roots(None, cwd=cwd) == [
        cwd.resolve() / "data",
        REPO / "data",
        (REPO.parent / "shared" / "data").resolve(),
        tmp_path.resolve() / "shared" / "data",
    ]
    roots = candidate_roots(None, cwd=REPO)  # cwd = repo: ./data and <repo>/data are one place
    assert roots == [REPO / "data", (REPO.parent / "shared" / "data").resolve()]


def test_registry_entries():
    names = [s.name for s in list_datasets()]
    assert names[0] == "ml-latest-small" and {"ml-1m", "ml-100k", "amazon-beauty"} <= set(names)
    beauty = get_spec("amazon-beauty")
    assert beauty.layouts[0].files == ("user_sequence.txt", "items.jsonl")
    assert beauty.layouts[1].format == "amazon-raw"
    assert all(len(h) == 64 for h in get_spec("ml-latest-small").sha256.values())
    assert get_spec("nope") is None


def test_registry_name_found_under_root_with_detected_layout(tmp_path):
    folder = tmp_path / "data" / "amazon-beauty"
    folder.mkdir(parents=True)
    (folder / "reviews_Beauty_5.json.gz").write_bytes(b"")
    (folder / "meta_Beauty.json.gz").write_bytes(b"")
    spec, found = find_dataset("amazon-beauty", str(tmp_path / "data"), cwd=tmp_path)
    assert found == folder and spec.format == "amazon-raw" and spec.name == "amazon-beauty"
    (folder / "user_sequence.txt").write_text("U A B C\n")
    (folder / "items.jsonl").write_text("")
    spec, _ = find_dataset("amazon-beauty", str(tmp_path / "data"), cwd=tmp_path)
    assert spec.format == "amazon-sequence"  # the first layout wins when both are present


def test_folder_path_and_unregistered_name_under_root(tmp_path):
    folder = tmp_path / "data" / "shop"
    folder.mkdir(parents=True)
    (folder / "interactions.tsv").write_text("user\titem\nu\ti\n")
    spec, found = find_dataset(str(folder), None, cwd=tmp_path)
    assert found == folder.resolve() and spec.format == "generic" and spec.name == "shop"
    assert spec.files == ("interactions.tsv",)
    spec, found = find_dataset("shop", str(tmp_path / "data"), cwd=tmp_path)
    assert found == folder.resolve() and spec.format == "generic"


def test_missing_registered_dataset_lists_every_place_looked(tmp_path):
    cwd = tmp_path / "work"
    (cwd / "data" / "ml-1m").mkdir(parents=True)  # exists but empty
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("ml-1m", None, cwd=cwd)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, DataError)
    for root in candidate_roots(None, cwd=cwd):
        assert str(root / "ml-1m") in message
    assert "(no ratings.dat + movies.dat)" in message
    assert "kirec data download ml-1m" in message and f"{cwd.resolve() / 'data' / 'ml-1m'}/" in message


def test_missing_unknown_dataset_explains_the_generic_format(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("my-shop", str(tmp_path / "d"), cwd=tmp_path)
    message = str(info.value)
    assert "\n" not in message and "not a registered name" in message
    assert str(tmp_path / "d" / "my-shop") in message and "interactions.csv" in message
