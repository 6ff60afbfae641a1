"""The app shell: arguments and environment, screen switching, the command palette's commands."""

from __future__ import annotations

import pytest

from kirec_tui.app import KirecApp, build_app
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
