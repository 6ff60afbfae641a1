"""The Runs screen in small terminals: at 100x30 the metrics and the filters stay on screen, at 80x24 it reads."""

from __future__ import annotations

import pytest
from tests.tui.test_tui_snapshots import make_app, settle


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
def test_runs_screen_small(snap_compare, tmp_path, runs_db, size):
    db, _ = runs_db
    assert snap_compare(make_app(tmp_path, db), terminal_size=size, run_before=settle)
