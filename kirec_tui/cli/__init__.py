"""The `kirec` command line: the same engine pipeline as the TUI, headless.

Heavy libraries (torch, transformers) are imported inside commands so that `kirec --help` stays instant.
"""

from __future__ import annotations

import gc

import typer

from kirec_tui.cli import data, items, ranking, runs
from kirec_tui.cli.bench import bench_command
from kirec_tui.cli.embed import embed_command
from kirec_tui.cli.extract import extract_command
from kirec_tui.cli.process_end import end_now_if_asked
from kirec_tui.cli.run import run_command

app = typer.Typer(
    name="kirec",
    help="Knowledge injection for sequential recommendation: train, evaluate, inspect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run_command)
app.command("extract")(extract_command)
app.command("embed")(embed_command)
app.add_typer(data.app, name="data")
runs.app.command("ranks")(ranking.ranks_command)
app.add_typer(runs.app, name="runs")
app.command("recommend")(items.recommend_command)
app.command("item")(items.item_command)
app.command("bench")(bench_command)


def main() -> None:
    try:
        try:
            app()
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside a command's own handler
            raise SystemExit(130) from None
    except SystemExit as done:  # how every command ends (Click exits even on success)
        end_now_if_asked(done.code)  # a DDP rank ends here, without the interpreter's finalization
        raise
    finally:
        # The command has written and closed what it made. The interpreter's final garbage collection over the
        # objects torch leaves would take a second or two of every exit; frozen, they just go with the process.
        gc.freeze()
