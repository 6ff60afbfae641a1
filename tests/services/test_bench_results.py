"""Reading `kirec bench` results files back (the Bench screen's service): the committed tables read whole, other or
broken JSON files are one line naming the file, and a table's runs are checked against the store at hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.services.bench import BenchResultsError, find_bench_results, read_bench_results

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def test_the_committed_results_read_back_as_their_json_says():
    paths = find_bench_results(RESULTS)
    assert RESULTS / "ml-latest-small.json" in paths
    table = read_bench_results(RESULTS / "ml-latest-small.json")
    document = json.loads((RESULTS / "ml-latest-small.json").read_text())
    assert table.name == document["bench"] and table.command == document["command"]
    for cell, row in zip(table.cells, document["rows"]):
        assert (cell.method, cell.is_baseline, list(cell.run_ids)) == (row["method"], row["baseline"], row["run_ids"])
        assert cell.metrics["NDCG@10"].mean == row["test"]["NDCG@10"]["mean"]
        assert cell.gain == row["gain"]
        assert cell.p_value == (None if row["wilcoxon"] is None else row["wilcoxon"]["p_value"])
        assert cell.runs_in_store is None  # no store given: not checked


@pytest.mark.parametrize(
    "text, said",
    [("{", "not JSON"), ('{"rows": []}', "not a kirec bench results file"), ("[1]", "not a kirec bench results file")],
)
def test_a_file_that_is_not_a_results_table_is_one_line_naming_it(tmp_path, text, said):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(BenchResultsError) as caught:
        read_bench_results(path)
    assert str(path) in str(caught.value) and said in str(caught.value) and "\n" not in str(caught.value)
    assert find_bench_results(tmp_path) == []  # and the folder listing skips it
    with pytest.raises(BenchResultsError, match="no such folder"):
        find_bench_results(tmp_path / "missing")


def test_runs_are_in_the_store_only_when_their_ids_name_runs_of_that_dataset_and_backbone(runs_db, tmp_path):
    from engine.store import open_store

    db, ids = runs_db  # ids[0]: ml-latest-small sasrec; ids[1]: ml-latest-small gru4rec
    row = {"protocol": "full", "dataset": "ml-latest-small", "backbone": "sasrec", "baseline": True, "seeds": [1]}
    document = {
        "bench": "b",
        "rows": [
            {**row, "method": "here", "run_ids": [ids[0]], "test": {}},
            {**row, "method": "other-backbone", "run_ids": [ids[1]], "test": {}},
            {**row, "method": "absent", "run_ids": [ids[0], 999], "test": {}},
        ],
    }
    path = tmp_path / "b.json"
    path.write_text(json.dumps(document))
    with open_store(db) as store:
        cells = {c.method: c.runs_in_store for c in read_bench_results(path, store=store).cells}
    assert cells == {"here": True, "other-backbone": False, "absent": False}


def test_benches_in_store_counts_the_runs_each_bench_named(runs_db):
    from engine.services.bench import benches_in_store
    from engine.store import open_store

    db, _ = runs_db
    with open_store(db) as store:
        assert benches_in_store(store) == {}  # no run there was made by a bench
        for name in ("bench demo: id sasrec d seed 1", "bench demo: id sasrec d seed 2", "bench b2: kirec sasrec d"):
            store.create_run(
                name=name,
                config={},
                dataset="d",
                dataset_fingerprint="f",
                backbone="sasrec",
                method="id",
                device="cpu",
                params={},
                code_version="t",
            )
        assert benches_in_store(store) == {"b2": 1, "demo": 2}
