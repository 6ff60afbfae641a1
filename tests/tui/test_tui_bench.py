"""The Bench screen over a real (tiny) `kirec bench`: its table with gains and p-values, choosing a bench and a
folder, and Enter on a row opening Compare with that row's runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.data_support import write_generic_dataset
from tests.tui_support import wait_for_workers

from kirec_tui.app import KirecApp
from kirec_tui.screens.bench import BenchScreen
from kirec_tui.screens.compare import CompareScreen

pytestmark = pytest.mark.anyio
SIZE = (160, 45)
BENCH = """
[bench]
name = "tiny"
methods = ["id", "wide"]
datasets = ["DATASET"]
seeds = [1, 2]

[method.wide]
"knowledge.method" = "id"
"model.hidden_size" = 24

[config]
"model.hidden_size" = 16
"model.max_len" = 10
"train.batch_size" = 32
"train.device" = "cpu"
"train.epochs" = 1
"train.num_threads" = 1
"knowledge.embed_text" = "raw"
"""


@pytest.fixture(scope="module")
def bench_folder(tmp_path_factory) -> Path:
    """A workspace holding runs.db and docs/results/tiny.json: two methods × two seeds, one epoch each."""
    from engine.services.bench import run_bench

    root = tmp_path_factory.mktemp("bench")
    dataset = write_generic_dataset(root / "tiny-data")
    config = root / "tiny.toml"
    config.write_text(BENCH.replace("DATASET", str(dataset)))
    run_bench(config, root / "runs.db", "kirec bench tiny.toml", out=root / "docs" / "results" / "tiny", workspace=root)
    return root


def rows_of(json_path: Path) -> dict[str, dict]:
    return {row["method"]: row for row in json.loads(json_path.read_text())["rows"]}


def shown_rows(screen) -> dict[str, dict[str, str]]:
    """The table as shown: method -> column label -> cell text."""
    from textual.widgets import DataTable

    table = screen.query_one("#bench-table", DataTable)
    labels = [str(c.label) for c in table.ordered_columns]
    rows = [dict(zip(labels, (str(v) for v in table.get_row_at(i)))) for i in range(table.row_count)]
    return {row["method"]: row for row in rows}


async def open_bench(pilot) -> BenchScreen:
    await pilot.press("5")
    await wait_for_workers(pilot.app)
    await pilot.pause()
    assert isinstance(pilot.app.screen, BenchScreen)
    return pilot.app.screen


async def test_shows_the_bench_table_with_gains_and_p_values(bench_folder):
    rows = rows_of(bench_folder / "docs" / "results" / "tiny.json")
    app = KirecApp(db_path=bench_folder / "runs.db", cwd=bench_folder, env={}, poll_seconds=3600)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_bench(pilot)
        shown = shown_rows(screen)
        assert set(shown) == {"id", "wide"}
        wide, base = rows["wide"], rows["id"]
        assert shown["wide"]["gain NDCG@10"] == f"{wide['gain']['NDCG@10'] * 100:+.1f}%"
        assert shown["wide"]["gain HR@10"] == f"{wide['gain']['HR@10'] * 100:+.1f}%"
        p = wide["wilcoxon"]["p_value"]
        assert shown["wide"]["p"] == (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")
        ndcg = wide["test"]["NDCG@10"]
        assert shown["wide"]["NDCG@10"] == f"{ndcg['mean']:.4f} ± {ndcg['std']:.4f}"
        assert shown["id"]["gain NDCG@10"] == "baseline" and shown["id"]["p"] == "—"
        assert shown["id"]["runs"] == ", ".join(map(str, base["run_ids"])) and shown["id"]["seeds"] == "2"
        title = str(screen.query_one("#bench-title").render())
        assert "tiny" in title and "kirec bench tiny.toml" in title


async def test_enter_on_a_row_opens_compare_with_that_rows_runs(bench_folder):
    rows = rows_of(bench_folder / "docs" / "results" / "tiny.json")
    app = KirecApp(db_path=bench_folder / "runs.db", cwd=bench_folder, env={}, poll_seconds=3600)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_bench(pilot)
        order = [c.method for c in screen.table.cells]
        await pilot.press(*["down"] * order.index("wide"), "enter")
        await wait_for_workers(app)
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.run_ids == rows["wide"]["run_ids"] and len(app.screen.run_ids) == 2
        assert app.screen.comparison is not None  # the runs are this store's: Compare loaded them
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press(*["up"] * len(order), "enter")  # the baseline row
        await wait_for_workers(app)
        assert isinstance(app.screen, CompareScreen) and app.screen.run_ids == rows["id"]["run_ids"]


async def test_choose_a_bench_and_a_folder(bench_folder, tmp_path):
    results = tmp_path / "elsewhere"
    results.mkdir()
    document = json.loads((bench_folder / "docs" / "results" / "tiny.json").read_text())
    document["bench"] = "only-baseline"
    document["rows"] = [r for r in document["rows"] if r["baseline"]]
    (results / "only-baseline.json").write_text(json.dumps(document))
    shutil.copy(bench_folder / "docs" / "results" / "tiny.json", results / "tiny.json")
    (results / "notes.json").write_text('{"not": "a bench"}')  # other JSON files are not offered
    app = KirecApp(db_path=bench_folder / "runs.db", cwd=bench_folder, env={}, poll_seconds=3600)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_bench(pilot)
        await pilot.press("f")
        folder = screen.query_one("#bench-folder")
        assert app.focused is folder
        folder.value = ""
        await pilot.press(*str(results), "enter")
        await wait_for_workers(app)
        await pilot.pause()
        select = screen.query_one("#bench-file")
        assert [str(label) for label, _ in select._options[1:]] == ["only-baseline", "tiny"]
        assert app.focused is screen.query_one("#bench-table")  # back on the table: its keys work again
        select.value = str(results / "only-baseline.json")
        await wait_for_workers(app)
        await pilot.pause()
        assert screen.table.name == "only-baseline" and set(shown_rows(screen)) == {"id"}
        select.value = str(results / "tiny.json")
        await wait_for_workers(app)
        await pilot.pause()
        assert set(shown_rows(screen)) == {"id", "wide"}
        # A folder without results says so in place.
        await pilot.press("f")
        folder.value = ""
        await pilot.press(*str(tmp_path / "missing"), "enter")
        await wait_for_workers(app)
        await pilot.pause()
        assert "no such folder" in str(screen.query_one("#bench-title").render())
        assert screen.table is None and screen.query_one("#bench-table").row_count == 0


async def test_a_table_made_from_another_database_does_not_open_other_runs(bench_folder, tmp_path, runs_db):
    db, _ = runs_db  # holds runs 1..5, but not this bench's: same ids, other datasets
    (tmp_path / "docs" / "results").mkdir(parents=True)
    shutil.copy(bench_folder / "docs" / "results" / "tiny.json", tmp_path / "docs" / "results" / "tiny.json")
    app = KirecApp(db_path=db, cwd=tmp_path, env={}, poll_seconds=3600)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_bench(pilot)
        assert all(c.runs_in_store is False for c in screen.table.cells)
        assert "are not in" in str(screen.query_one("#bench-info").render())
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen  # no Compare of unrelated runs that happen to share the ids


async def test_a_folder_without_results_names_the_benches_the_store_holds(bench_folder, tmp_path):
    app = KirecApp(db_path=bench_folder / "runs.db", cwd=tmp_path, env={}, poll_seconds=3600)  # no docs/results here
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_bench(pilot)
        title = str(screen.query_one("#bench-title").render())
        assert "no such folder" in title and "tiny (4 runs)" in title and "--table-only" in title
        await pilot.press("enter")  # nothing to open
        assert app.screen is screen
