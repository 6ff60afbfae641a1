"""SVG snapshots of each screen at a fixed terminal size, over the fixed runs.db of tui_support (the runs_db fixture).

Update after an intended visual change with: pytest tests/tui/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from tests.tui_support import wait_for_workers

from kirec_tui.app import KirecApp

SIZE = (140, 40)


async def settle(pilot) -> None:
    """Workers done, then the screen converged: a DataTable filled by a worker sizes its columns when it is next
    idle, so a capture right after the fill once caught header-wide columns; wait until two renders agree."""
    await wait_for_workers(pilot.app)
    # A focused field's cursor blinks on a timer: whether a snapshot caught it lit depended on the machine's load.
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
    previous = None
    for _ in range(50):  # bounded: a screen that never settles fails its snapshot instead of hanging
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        shot = pilot.app.export_screenshot()
        if shot == previous:
            break
        previous = shot


def make_app(tmp_path, db) -> KirecApp:
    # A long poll period: nothing writes the fixed database while the snapshot is taken.
    return KirecApp(db_path=db, cwd=tmp_path, env={}, poll_seconds=3600)


def test_runs_screen(snap_compare, tmp_path, runs_db):
    db, _ = runs_db
    assert snap_compare(make_app(tmp_path, db), terminal_size=SIZE, run_before=settle)


def test_runs_screen_selection_and_sort(snap_compare, tmp_path, runs_db):
    db, _ = runs_db

    async def select_and_sort(pilot) -> None:
        await settle(pilot)
        await pilot.press("space", "down", "space", "o")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path, db), terminal_size=SIZE, run_before=select_and_sort)


def test_compare_screen(snap_compare, tmp_path, runs_db):
    db, _ = runs_db

    async def compare_first_three(pilot) -> None:
        await settle(pilot)
        await pilot.press("o")  # oldest first
        await settle(pilot)
        await pilot.press("space", "space", "space", "c")
        # the Compare screen loads its runs in a worker it starts on mount: wait for that state, not for quiet
        # renders, which a loaded machine could show before the worker had even started
        from kirec_tui.screens.compare import CompareScreen

        for _ in range(500):  # bounded
            screen = pilot.app.screen
            if isinstance(screen, CompareScreen) and screen.comparison is not None:
                break
            await pilot.pause(0.02)
        await settle(pilot)

    assert snap_compare(make_app(tmp_path, db), terminal_size=SIZE, run_before=compare_first_three)


def test_train_screen_idle(snap_compare, tmp_path, runs_db):
    db, _ = runs_db

    async def open_train(pilot) -> None:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path, db), terminal_size=SIZE, run_before=open_train)


def test_help_screen(snap_compare, tmp_path, runs_db):
    db, _ = runs_db

    async def open_help(pilot) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, db), terminal_size=SIZE, run_before=open_help)


def test_items_screen(snap_compare, tmp_path, runs_db, tiny_dataset):
    db, _ = runs_db

    async def find_item(pilot) -> None:
        await settle(pilot)
        await pilot.press("3")
        await pilot.pause()
        pilot.app.screen.query_one("#items-dataset").value = tiny_dataset.name  # relative to the app's cwd
        pilot.app.screen.query_one("#items-dataset").focus()  # focus starts on the results table
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("escape", "slash", *"number 7")
        await settle(pilot)
        await settle(pilot)
        await pilot.press("escape")

    assert snap_compare(make_app(tmp_path, db), terminal_size=SIZE, run_before=find_item)


def test_prompts_screen(snap_compare, tmp_path, runs_db, tiny_dataset):
    from test_tui_prompts import PROMPT

    db, _ = runs_db
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "tiny.toml").write_text(PROMPT)

    async def open_prompts(pilot) -> None:
        await settle(pilot)
        await pilot.press("4")
        await pilot.pause()
        pilot.app.screen.query_one("#prompt-dataset").value = tiny_dataset.name
        pilot.app.screen.query_one("#prompt-dataset").focus()
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("escape")
        await pilot.pause()

    app = KirecApp(db_path=db, cwd=tmp_path, env={}, poll_seconds=3600, prompts_dir=folder)
    assert snap_compare(app, terminal_size=SIZE, run_before=open_prompts)
