"""Running `kirec` in this process for tests: Click's runner inside the given working folder."""

from __future__ import annotations

import contextlib
from pathlib import Path


def invoke(*args: str, cwd: Path, input: str | None = None):
    """`kirec ARGS` run in `cwd`; an exception the CLI does not turn into an exit code propagates (a traceback
    a user would see fails the test)."""
    from typer.testing import CliRunner

    from kirec_tui.cli import app

    with contextlib.chdir(cwd):
        return CliRunner().invoke(app, list(args), catch_exceptions=False, input=input)
