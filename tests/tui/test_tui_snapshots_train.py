"""SVG snapshots of the Train screen and the help at small terminals (100x30, 80x24), with the focus visible.

Update after an intended visual change with: pytest tests/tui/test_tui_snapshots_train.py --snapshot-update
"""

from __future__ import annotations

import pytest

from tests.tui.test_tui_snapshots import make_app, settle


async def open_train(pilot, *keys: str) -> None:
    await settle(pilot)
    await pilot.press("2", *keys)
    await settle(pilot)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
def test_train_screen_small(snap_compare, tmp_path, runs_db, size):
    db, _ = runs_db
    assert snap_compare(make_app(tmp_path, db), terminal_size=size, run_before=open_train)


def test_train_screen_a_field_has_the_focus(snap_compare, tmp_path, runs_db):
    """Tab, Tab: the dataset field is marked, and so is its label."""
    db, _ = runs_db

    async def into_the_dataset_field(pilot) -> None:
        await open_train(pilot, "tab", "tab")

    assert snap_compare(make_app(tmp_path, db), terminal_size=(100, 30), run_before=into_the_dataset_field)


def test_help_screen_80x24(snap_compare, tmp_path, runs_db):
    db, _ = runs_db

    async def open_help(pilot) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path, db), terminal_size=(80, 24), run_before=open_help)


def test_quit_asks_while_a_run_trains_80x24(snap_compare, tmp_path, runs_db):
    db, _ = runs_db

    async def quit_mid_run(pilot) -> None:
        await open_train(pilot)
        pilot.app.screen.busy_work = lambda: "run 6 is training"  # what the screen answers while its run trains
        await pilot.press("ctrl+q")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path, db), terminal_size=(80, 24), run_before=quit_mid_run)
