"""SVG snapshots of the Prompts screen on small terminals (100×30: the editor above the tabs, still wide enough to
edit; 80×24: readable) and of a two-version diff (the attribute table and the files' text diff) at 160×48.

Update after an intended visual change with: pytest tests/tui/test_tui_snapshots_prompts.py --snapshot-update
"""

from __future__ import annotations

from tests.tui.test_tui_snapshots import settle

from kirec_tui.app import KirecApp

LONG_LINE = "Describe the item in a few words: what it is, who it is for, and the feeling it gives people who use it."


def prompts_app(tmp_path, db, prompt_text: str) -> KirecApp:
    from test_tui_prompts import FakeExtractionBackend

    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "tiny.toml").write_text(prompt_text)
    return KirecApp(
        db_path=db,
        cwd=tmp_path,
        env={},
        poll_seconds=3600,
        prompts_dir=folder,
        extraction_backend=FakeExtractionBackend,
    )


async def open_prompts(pilot, dataset_name: str) -> None:
    await settle(pilot)
    await pilot.press("4")
    await pilot.pause()
    field = pilot.app.screen.query_one("#prompt-dataset")
    field.value = dataset_name  # relative to the app's cwd
    field.focus()
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("escape")
    await settle(pilot)


def long_prompt() -> str:
    from test_tui_prompts import PROMPT

    return PROMPT.replace("Describe the item with:", LONG_LINE)  # wraps in the editor


def test_prompts_screen_100x30(snap_compare, tmp_path, runs_db, tiny_dataset):
    db, _ = runs_db

    async def run_before(pilot) -> None:
        await open_prompts(pilot, tiny_dataset.name)

    app = prompts_app(tmp_path, db, long_prompt())
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_prompts_screen_80x24(snap_compare, tmp_path, runs_db, tiny_dataset):
    db, _ = runs_db

    async def run_before(pilot) -> None:
        await open_prompts(pilot, tiny_dataset.name)

    app = prompts_app(tmp_path, db, long_prompt())
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_prompts_diff_of_two_versions_160x48(snap_compare, tmp_path, runs_db, tiny_dataset):
    from test_tui_prompts import PROMPT

    db, _ = runs_db

    async def run_before(pilot) -> None:
        await open_prompts(pilot, tiny_dataset.name)
        screen = pilot.app.screen
        await pilot.press("ctrl+l", "ctrl+r")  # mark v1, extract with it
        await settle(pilot)
        screen.query_one("#prompt-editor").text = PROMPT.replace("Genres: {genres}", "Genres are hidden.")
        screen.validate_now()
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("ctrl+o")
        await settle(pilot)
        screen.query_one("#prompt-files").focus()
        pilot.app.clear_notifications()  # "saved …" would be gone or not depending on the machine's speed
        await settle(pilot)

    app = prompts_app(tmp_path, db, PROMPT)
    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)
