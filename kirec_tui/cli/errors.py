"""Exit codes and the one place that turns engine errors into a one-line message and a distinct exit status."""

from __future__ import annotations

import contextlib
from typing import Iterator

import typer
from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1  # the run or command failed
EXIT_USAGE = 2  # bad flags, config or input file (Typer/Click also use 2 for usage errors)
EXIT_DATA = 3  # a dataset is missing or cannot be downloaded
EXIT_NOT_FOUND = 4  # a run, user or item that does not exist
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

err_console = Console(stderr=True)


def print_status(event) -> None:
    """An engine event sink for commands without a progress display: status lines, dimmed, on stderr."""
    if hasattr(event, "message"):
        err_console.print(f"[dim]{event.message}[/]")


def fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Map known engine exceptions to exit codes; anything else is a real bug and keeps its traceback."""
    from engine.config import ConfigError
    from engine.data import DataError, DatasetNotFoundError, DownloadError
    from engine.extraction import BackendError, PromptError
    from engine.semantic.encoders import EncoderError
    from engine.store import RunNotFoundError, StoreError

    try:
        yield
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED) from None
    except (DatasetNotFoundError, DownloadError) as exc:
        raise fail(str(exc), EXIT_DATA) from None
    except (ConfigError, DataError, StoreError, PromptError, BackendError, EncoderError) as exc:  # a file or value the user gave is wrong
        raise fail(str(exc), EXIT_USAGE) from None
    except RunNotFoundError as exc:
        raise fail(str(exc), EXIT_NOT_FOUND) from None
