"""`kirec-tui`: the Textual workbench over kirec's headless engine (runs, training, items, prompts).

The app holds only what every screen shares: where the runs database and the data live, the environment
that `load_config` merges, and one lazily opened `RunStore`. Screens call engine functions in thread
workers and render engine events; none of them re-implements engine logic.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, TextArea

from kirec_tui.screens.bench import BenchScreen
from kirec_tui.screens.help import HelpScreen, key_display
from kirec_tui.screens.modals import ConfirmModal
from kirec_tui.screens.items import ItemsScreen
from kirec_tui.screens.prompts import PromptsScreen
from kirec_tui.screens.runs import RunsScreen
from kirec_tui.screens.train import TrainScreen

# The workbench's screens, one line each: (mode, title, the key that switches to it, the screen). Adding a
# screen is its module under screens/ plus its line here; the modes, the keys and the palette follow.
SCREENS: tuple[tuple[str, str, str, type[Screen]], ...] = (
    ("runs", "Runs", "1", RunsScreen),
    ("train", "Train", "2", TrainScreen),
    ("items", "Items", "3", ItemsScreen),
    ("prompts", "Prompts", "4", PromptsScreen),
    ("bench", "Bench", "5", BenchScreen),
)
SCREEN_TITLES = {mode: title for mode, title, _key, _screen in SCREENS}

# Where a screen of SCREENS that sets no AUTO_FOCUS of its own puts the focus on arrival: the first widget that
# leaves the printable keys to the screen's bindings (a text field would take the digit meant to switch screens).
# Dialogs keep Textual's default (their first widget: a prompt's field).
NON_TEXT_FOCUS = "DataTable, OptionList, Tabs, Select, Button, Tree, ListView"


def arriving_on(screen_type: type[Screen]) -> Callable[[], Screen]:
    """The MODES entry of a screen: makes it, with the focus on arrival on a non-text widget unless it chose."""

    def make() -> Screen:
        screen = screen_type()
        if screen.AUTO_FOCUS is None:
            screen.AUTO_FOCUS = NON_TEXT_FOCUS  # type: ignore[misc]  (read per instance by Textual)
        return screen

    return make


@runtime_checkable
class HoldsWork(Protocol):
    """A screen that may be doing work that quitting would end (a run training, an unsaved edit): it opts in to
    the quit question by describing that work, or returning None when there is none."""

    def busy_work(self) -> str | None: ...


def command_action(callback: Callable) -> str | None:
    """The action name a palette command runs: a binding's action (the partial `binding_commands` makes), or an
    `action_x` method (what screens' palette_commands yield); None for anything else."""
    if isinstance(callback, partial) and callback.args:
        return str(callback.args[0]).partition("(")[0]
    name = getattr(callback, "__name__", "")
    return name.removeprefix("action_") if name.startswith("action_") else None


def own_bindings(screen_type: type) -> list[Binding]:
    """The bindings a kirec class declares (and its kirec base classes), one per key; not Textual's own."""
    declared = [
        cls.__dict__.get("BINDINGS", []) for cls in screen_type.__mro__ if cls.__module__.startswith("kirec_tui")
    ]
    return [b for bindings in declared for b in Binding.make_bindings(bindings)]


def binding_commands(screen: Screen, skip: set[str]) -> Iterable[SystemCommand]:
    """One palette command per action bound on `screen`, but the actions in `skip` (the screen's own
    palette_commands already offer them): the title is the binding's description, the help its keys."""
    prefix = screen.sub_title or type(screen).__name__.removesuffix("Screen")
    bindings = own_bindings(type(screen))
    for binding in bindings:
        action = binding.action.partition("(")[0]
        if action in skip:
            continue
        skip.add(action)
        keys = ", ".join(key_display(b.key) for b in bindings if b.action == binding.action)
        yield SystemCommand(
            f"{prefix}: {binding.description or action.replace('_', ' ')}",
            f"{keys}   {binding.tooltip}".rstrip(),
            partial(screen.run_action, binding.action),
        )


class KirecApp(App[None]):
    """The workbench. `env` is the environment `load_config` merges (main passes os.environ; tests pass {})."""

    TITLE = "kirec"
    CSS_PATH = "kirec.tcss"
    MODES = {mode: arriving_on(screen) for mode, _title, _key, screen in SCREENS}
    DEFAULT_MODE = "runs"
    BINDINGS = [
        *(Binding(key, f"switch_mode('{mode}')", title) for mode, title, key, _screen in SCREENS),
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        db_path: str | Path = "runs.db",
        data_root: str | None = None,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        prompts_dir: str | Path | None = None,
        poll_seconds: float = 2.0,
        extraction_backend: Callable[[], Any] | None = None,
        workspace: Any = None,
    ) -> None:
        from engine.workspace import Workspace

        super().__init__()
        self.cwd = Path(cwd or Path.cwd()).resolve()
        # engine.workspace.Workspace (main builds it from the config), or its folder (None: cwd): where the
        # database, checkpoints and caches are; a relative db_path is inside it
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace, cwd=self.cwd)
        self.db_path = self.workspace.path(db_path)
        self.data_root = data_root
        self.env: dict[str, str] = dict(env or {})
        # knowledge.prompts_dir: the Prompts screen's folder, and (through env) the Train screen's runs' too
        self.prompts_dir = self.cwd / Path(prompts_dir).expanduser() if prompts_dir is not None else None
        if self.prompts_dir is not None:
            self.env["KIREC_KNOWLEDGE__PROMPTS_DIR"] = str(self.prompts_dir)
        self.poll_seconds = poll_seconds
        self._extraction_backend = extraction_backend
        self._store: Any = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The runs store, opened on first use (from a worker thread, so start-up never waits on SQLAlchemy)."""
        with self._store_lock:
            if self._store is None:
                from engine.services.runs import open_workspace_store

                self._store = open_workspace_store(self.db_path)
            return self._store

    def data_settings(self, dataset: str | None = None) -> Any:
        """The data settings by the one precedence order (KIREC_DATA__* included), for `dataset` or the default."""
        from engine.config import load_config

        return load_config(
            env=self.env, flags={"data.dataset": dataset or None, "data.data_root": self.data_root}, keys=("data",)
        ).data

    def make_extraction_backend(self) -> Any:
        """The LLM backend the config names (knowledge.extractor / llm_model / llm_url); tests pass a factory."""
        if self._extraction_backend is not None:
            return self._extraction_backend()
        from engine.config import load_config
        from engine.services import extraction

        return extraction.backend(load_config(env=self.env, keys=("knowledge", "train.num_threads")))

    def on_mount(self) -> None:
        self.mode_change_signal.subscribe(self, self._arrived)

    def _arrived(self, _mode: str) -> None:
        # Back on a screen left while typing in a field: that field would take the next digit. Blurring it lets
        # the screen's resume put the focus on its AUTO_FOCUS widget; the field keeps its text.
        if isinstance(self.screen.focused, (Input, TextArea)):
            self.screen.set_focus(None)

    def on_unmount(self) -> None:
        if self._store is not None:
            self._store.close()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- quitting: work in progress is not thrown away without a question ---------------------------------------

    def busy_work(self) -> list[str]:
        """What quitting now would end: the description of every screen (of every mode) that holds work."""
        screens: list[Screen] = []
        for mode in self.MODES:
            try:
                screens += self.get_screen_stack(mode)
            except KeyError:  # a mode's screen exists only once it has been shown
                continue
        return [work for s in screens if isinstance(s, HoldsWork) and (work := s.busy_work())]

    async def action_quit(self) -> None:
        work = self.busy_work()
        if not work:
            self.exit()
            return
        if isinstance(self.screen, ConfirmModal) and self.screen.id == "confirm-quit":
            return  # already asking

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        question = "; ".join(work) + ".\nQuit anyway? It ends INTERRUPTED, and Runs can resume it later."
        self.push_screen(ConfirmModal(question, id="confirm-quit"), answered)

    # -- the command palette ------------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in SCREEN_TITLES.items():
            yield SystemCommand(f"Go to {title}", f"Switch to the {title} screen", lambda m=mode: self.switch_mode(m))
        yield SystemCommand("Help: key bindings", "Every key binding of every screen", self.action_help)
        commands = getattr(screen, "palette_commands", None)
        offered = list(commands()) if commands is not None else []
        yield from offered
        # every action of the screen, found by name: a binding its palette_commands do not already offer
        yield from binding_commands(screen, skip={a for c in offered if (a := command_action(c.callback))})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kirec-tui", description="kirec's Textual workbench")
    parser.add_argument("--db", help="runs database (default runs.db, or KIREC_DB)")
    parser.add_argument("--data-root", help="folder holding the datasets (or KIREC_DATA)")
    parser.add_argument(
        "--prompts-dir",
        help="folder of prompt files, edited on the Prompts screen and used by the Train screen's runs "
        "(default: the repository's prompts/, or KIREC_KNOWLEDGE__PROMPTS_DIR)",
    )
    parser.add_argument(
        "--workspace",
        help="folder holding runs.db, the checkpoints and the caches (default: the current folder, or KIREC_WORKSPACE)",
    )
    return parser.parse_args(argv)


def build_app(argv: list[str] | None, env: Mapping[str, str]) -> KirecApp:
    """The app for these arguments and environment: flags beat KIREC_WORKSPACE / KIREC_DB / KIREC_DATA, which
    beat the defaults."""
    from engine.config import load_config
    from engine.workspace import Workspace

    args = parse_args(argv)
    flags = {"db": args.db, "data.data_root": args.data_root, "workspace": args.workspace}
    cfg = load_config(env=env, flags={**flags, "knowledge.prompts_dir": args.prompts_dir})
    return KirecApp(
        db_path=cfg.db,
        data_root=cfg.data.data_root,
        env=env,
        prompts_dir=cfg.knowledge.prompts_dir,
        workspace=Workspace.of(cfg),
    )


def main(argv: list[str] | None = None) -> None:
    from engine.config import ConfigError

    try:
        # Validates every KIREC_* variable up front, so no screen meets a bad environment later.
        app = build_app(argv, dict(os.environ))
    except ConfigError as exc:  # bad usage: one line and exit 2, as the CLI does
        print(f"kirec-tui: error: {exc}", file=sys.stderr)
        sys.exit(2)
    app.run()


if __name__ == "__main__":
    main()
