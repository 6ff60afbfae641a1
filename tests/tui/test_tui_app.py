"""The app shell: arguments and environment, screen switching, the command palette's commands."""

from __future__ import annotations

import pytest
from tests.tui_support import wait_for_workers, wait_until
from textual.binding import Binding
from textual.command import CommandPalette
from textual.widgets import Input, TextArea

from kirec_tui.app import SCREENS, KirecApp, build_app, command_action, own_bindings
from kirec_tui.screens.modals import ConfirmModal
from kirec_tui.screens.items import ItemsScreen
from kirec_tui.screens.prompts import PromptsScreen
from kirec_tui.screens.runs import RunsScreen
from kirec_tui.screens.train import TrainScreen


def test_flags_beat_the_environment_which_beats_defaults(tmp_path):
    app = build_app([], {})
    assert app.db_path.name == "runs.db" and app.data_root is None
    app = build_app([], {"KIREC_DB": str(tmp_path / "env.db"), "KIREC_DATA": "/data/env"})
    assert app.db_path == tmp_path / "env.db" and app.data_root == "/data/env"
    app = build_app(["--db", str(tmp_path / "flag.db"), "--data-root", "/data/flag"], {"KIREC_DB": "x.db"})
    assert app.db_path == tmp_path / "flag.db" and app.data_root == "/data/flag"
    assert app.env == {"KIREC_DB": "x.db"}  # kept for the Train form's load_config


def test_a_relative_db_is_resolved_against_the_working_folder(tmp_path):
    assert KirecApp(db_path="sub/runs.db", cwd=tmp_path).db_path == tmp_path / "sub" / "runs.db"


@pytest.mark.anyio
async def test_digits_switch_screens_and_the_palette_offers_them(tmp_path):
    app = KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={}, prompts_dir=tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        assert isinstance(app.screen, RunsScreen)
        for key, screen_type in (
            ("2", TrainScreen),
            ("escape", TrainScreen),
            ("3", ItemsScreen),
            ("escape", ItemsScreen),
            ("4", PromptsScreen),
            ("1", RunsScreen),
        ):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, screen_type), key
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Go to Runs", "Go to Train", "Go to Items", "Go to Prompts", "Runs: export CSV"} <= set(titles)
        await pilot.press("ctrl+p")
        await pilot.press(*"go to train", "enter")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)


def test_main_refuses_a_bad_environment_with_one_line(monkeypatch, capsys):
    from kirec_tui.app import main

    monkeypatch.setenv("KIREC_TRAIN__EPOCHS", "many")
    with pytest.raises(SystemExit) as exited:
        main([])
    err = capsys.readouterr().err
    assert exited.value.code == 2  # bad usage, as the CLI reports it
    assert err.count("\n") == 1 and "train.epochs" in err and "many" in err


# -- a keyboard that never surprises -------------------------------------------------------------------------------


def make_app(tmp_path, **kwargs) -> KirecApp:
    return KirecApp(db_path=tmp_path / "runs.db", cwd=tmp_path, env={}, prompts_dir=tmp_path, **kwargs)


@pytest.mark.anyio
async def test_arriving_on_train_the_digits_still_switch_screens(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen) and not isinstance(app.focused, (Input, TextArea))
        await pilot.press("4")
        await pilot.pause()
        assert isinstance(app.screen, PromptsScreen)
        # a field chosen with Tab takes the digit; Escape leaves it and the digit switches again
        await pilot.press("2", "tab", "4")
        assert isinstance(app.screen, TrainScreen) and app.screen.query_one("#form-name", Input).value == "4"
        await pilot.press("escape", "1")
        assert isinstance(app.screen, RunsScreen)
        # left through the palette while typing in the field: coming back, the field no longer has the focus
        await pilot.press("2", "tab")
        assert isinstance(app.focused, Input)
        await pilot.press("ctrl+p", *"go to runs", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen) and not isinstance(app.focused, (Input, TextArea))
        assert app.screen.query_one("#form-name", Input).value == "4"  # the text stays


@pytest.mark.anyio
async def test_ctrl_q_quits_at_once_when_nothing_is_at_stake(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2", "ctrl+q")
        await pilot.pause()
        assert app.return_code == 0 and not isinstance(app.screen, ConfirmModal)


@pytest.mark.anyio
async def test_ctrl_q_asks_while_any_screen_holds_work(tmp_path):
    """The HoldsWork protocol: any screen of any mode (here the hidden Runs screen) that describes work in progress."""
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        app.screen.busy_work = lambda: "run 7 is resuming"  # what a screen opting in answers
        await pilot.press("2", "ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and "run 7 is resuming" in str(app.screen.question)
        await pilot.press("ctrl+q")  # asked once, not stacked
        assert len([s for s in app.screen_stack if isinstance(s, ConfirmModal)]) == 1
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen) and app.return_code is None  # still running
        await pilot.press("ctrl+q", "y")
        await pilot.pause()
        assert app.return_code == 0


@pytest.mark.anyio
async def test_the_palette_offers_every_binding_of_each_screen(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        for mode, _title, _key, screen_type in SCREENS:
            await app.switch_mode(mode)
            await pilot.pause()
            offered = {command_action(c.callback) for c in app.get_system_commands(app.screen)}
            bound = {b.action.partition("(")[0] for b in own_bindings(screen_type)}
            assert bound and bound <= offered, (mode, bound - offered)
        # found by name and run: "clear log" is no palette_command of Train's, only its binding
        await app.switch_mode("train")
        log = app.screen.query_one("#train-log")
        log.write("something to clear")
        await pilot.pause()
        assert log.lines
        await pilot.press("ctrl+p", *"clear log", "enter")
        await pilot.pause()
        assert not log.lines
        # on Prompts, "extract" and "diff" find the screen's actions
        await app.switch_mode("prompts")
        await pilot.pause()
        for words in ("extract", "diff"):  # the Prompts screen's own palette_commands offer these actions
            await pilot.press("ctrl+p", *words)
            palette = app.screen
            assert isinstance(palette, CommandPalette)
            await wait_until(
                pilot, lambda w=words, p=palette: any(f"prompts: {w}" in str(o.prompt).lower() for o in options(p))
            )
            await pilot.press("escape")
            await pilot.pause()


def options(palette) -> list:
    from textual.command import CommandList

    command_list = palette.query_one(CommandList)
    return [command_list.get_option_at_index(i) for i in range(command_list.option_count)]


@pytest.mark.anyio
async def test_no_binding_uses_ctrl_b_the_tmux_prefix(tmp_path):
    """Every screen, dialog and widget of the app, with the bindings their classes inherit (Textual's included)."""
    from kirec_tui.screens.compare import CompareScreen
    from kirec_tui.screens.help import HelpScreen
    from kirec_tui.screens.modals import TextPromptModal

    classes: set[type] = {KirecApp, CompareScreen, HelpScreen, ConfirmModal, TextPromptModal}
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        for mode, _title, _key, screen_type in SCREENS:
            await app.switch_mode(mode)
            await pilot.pause()
            classes |= {screen_type, *(type(node) for node in app.screen.walk_children(with_self=False))}
    offenders = [
        f"{cls.__name__}: {b.key} ({b.action})"
        for cls in classes
        for base in cls.__mro__
        for b in Binding.make_bindings(base.__dict__.get("BINDINGS", []))
        if b.key == "ctrl+b"
    ]
    assert not offenders


def rendered_cells(app, widget) -> list[tuple]:
    """(foreground, background) of each cell of `widget` as the screen renders it now (reverse video swapped)."""
    region = widget.region
    cells = []
    for strip in app.screen._compositor.render_strips()[region.y : region.bottom]:
        x = 0
        for segment in strip:
            style = segment.style
            fg = style.color.get_truecolor() if style and style.color else (0, 0, 0)
            bg = style.bgcolor.get_truecolor() if style and style.bgcolor else (0, 0, 0)
            for _char in segment.text:
                if region.x <= x < region.right:
                    cells.append((bg, fg) if style and style.reverse else (fg, bg))
                x += 1
    return cells


def colour_distance(a: tuple, b: tuple) -> float:
    """The larger of the foreground and the background distances of two cells, in RGB units."""
    return max(sum((p - q) ** 2 for p, q in zip(a[i], b[i], strict=True)) ** 0.5 for i in (0, 1))


@pytest.mark.anyio
async def test_the_focused_widget_is_clearly_marked(tmp_path, runs_db):
    from test_tui_prompts import PROMPT

    db, _ = runs_db
    (tmp_path / "tiny.toml").write_text(PROMPT)
    app = KirecApp(db_path=db, cwd=tmp_path, env={}, prompts_dir=tmp_path, poll_seconds=3600)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_workers(app)
        for key, selector in (
            ("1", "#runs-table"),  # a table
            ("1", "#filter-text"),  # a bordered field
            ("2", "#train-form"),  # the form, where the focus lands on arrival
            ("2", "#form-name"),  # a compact field
            ("2", "#form-backbone"),  # a compact select
            ("2", "#start"),  # a button
            ("4", "#prompt-files"),  # a list
            ("4", "#prompt-editor"),  # a text area
        ):
            await pilot.press(key)
            await wait_for_workers(app)
            for widget in app.screen.query("Input, TextArea"):
                widget.cursor_blink = False
            widget = app.screen.query_one(selector)
            app.screen.set_focus(None)
            await pilot.pause()
            blurred = rendered_cells(app, widget)
            widget.focus()
            await pilot.pause()
            focused = rendered_cells(app, widget)
            assert app.focused is widget
            # clearly: a colour moves by more than Textual's 5% tint does (about 15), over at least half a line of
            # cells (a text cursor alone is one cell; a table's cursor row, a border, a field's background are more)
            changed = sum(colour_distance(a, b) > 40 for a, b in zip(blurred, focused, strict=True))
            assert changed >= widget.region.width // 2, (selector, changed)
            app.screen.set_focus(None)


@pytest.mark.anyio
async def test_help_writes_keys_as_people_do_and_says_each_workflow(tmp_path):
    from kirec_tui.screens.help import UNBOUND, HelpScreen

    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#bindings")
        rows = {tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)}
        screen_keys = {row[:2] for row in rows}
        assert ("Everywhere", "F1, ?") in screen_keys and ("Everywhere", "Ctrl+Q") in screen_keys
        assert {("Runs", "/"), ("Runs", "Space"), ("Runs", "Enter"), ("Train", "Ctrl+R")} <= screen_keys
        keys = " ".join(row[1] for row in rows)
        assert not any(name in keys for name in ("question_mark", "slash", "ctrl+", "space", "enter", "escape"))
        workflows = str(app.screen.query_one("#workflows").render())
        for line in ("Space selects runs, c compares them", "2 Train: fill the form", "Ctrl+R starts", "Ctrl+P finds"):
            assert line in workflows
        assert UNBOUND not in workflows  # every key a workflow names is bound to its action
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
