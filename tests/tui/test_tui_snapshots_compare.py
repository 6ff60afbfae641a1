"""SVG snapshots of the Compare screen (and a run's detail) on small terminals, over the fixed runs.db.

Update after an intended visual change with: pytest tests/tui/test_tui_snapshots_compare.py --snapshot-update
"""

from __future__ import annotations

import pytest
from tests.tui.test_tui_snapshots import make_app, settle

from kirec_tui.screens.compare import CompareScreen

MEDIUM, SMALL = (100, 30), (80, 24)


def opening(runs: int, *then: str):
    """Oldest first, select `runs` runs and compare them (one run: its detail), wait for the screen's own load."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        await pilot.press(*(["space"] * runs + ["c"] if runs > 1 else ["enter"]))
        for _ in range(500):  # bounded: the Compare screen's worker starts on mount
            screen = pilot.app.screen
            if isinstance(screen, CompareScreen) and screen.view is not None:
                break
            await pilot.pause(0.02)
        await settle(pilot)
        if then:
            await pilot.press(*then)
            await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", [MEDIUM, SMALL], ids=["100x30", "80x24"])
def test_compare_two_runs(snap_compare, tmp_path, runs_db, size):
    db, _ = runs_db
    assert snap_compare(make_app(tmp_path, db), terminal_size=size, run_before=opening(2))


@pytest.mark.parametrize("size", [MEDIUM, SMALL], ids=["100x30", "80x24"])
def test_compare_three_runs_configuration_half(snap_compare, tmp_path, runs_db, size):
    db, _ = runs_db
    assert snap_compare(make_app(tmp_path, db), terminal_size=size, run_before=opening(3, "v"))


@pytest.mark.parametrize("size", [MEDIUM, SMALL], ids=["100x30", "80x24"])
def test_one_runs_detail(snap_compare, tmp_path, runs_db, size):
    db, _ = runs_db
    assert snap_compare(make_app(tmp_path, db), terminal_size=size, run_before=opening(1))


def test_compare_three_runs_baseline_moved(snap_compare, tmp_path, runs_db):
    db, _ = runs_db
    assert snap_compare(make_app(tmp_path, db), terminal_size=MEDIUM, run_before=opening(3, "b", "m", "m", "m"))
