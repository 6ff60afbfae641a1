"""SVG snapshots of the Items screen and the rank changes screen in small terminals: usable at 100x30, readable
at 80x24 (issue #11). Update after an intended visual change with:
pytest tests/tui/test_tui_snapshots_items.py --snapshot-update
"""

from __future__ import annotations

import pytest
from tests.tui.test_tui_snapshots import make_app, settle


async def find_item(pilot, dataset_name: str) -> None:
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    await pilot.press("d")
    pilot.app.screen.query_one("#items-dataset").value = dataset_name  # relative to the app's cwd
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("slash", *"number 7")
    await settle(pilot)
    await settle(pilot)
    await pilot.press("escape")
    await settle(pilot)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
def test_items_item_view_small(snap_compare, tmp_path, runs_db, tiny_dataset, size):
    db, _ = runs_db

    async def run_before(pilot) -> None:
        await find_item(pilot, tiny_dataset.name)

    assert snap_compare(make_app(tmp_path, db), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
def test_items_user_view_unknown_run_small(snap_compare, tmp_path, runs_db, tiny_dataset, size):
    """The user tab with a one-line answer in place (the fixed database's runs have no checkpoint)."""
    db, ids = runs_db

    async def run_before(pilot) -> None:
        await find_item(pilot, tiny_dataset.name)
        await pilot.press("u", *"u5")
        pilot.app.screen.query_one("#user-runs").value = str(ids[0])
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path, db), terminal_size=size, run_before=run_before)


def test_rank_changes_screen_waiting_for_runs(snap_compare, tmp_path, runs_db, tiny_dataset):
    db, _ = runs_db

    async def run_before(pilot) -> None:
        await find_item(pilot, tiny_dataset.name)
        await pilot.press("r")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path, db), terminal_size=(100, 30), run_before=run_before)
