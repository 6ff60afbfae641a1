"""Exit codes and the one place that turns engine errors into a one-line message and a distinct exit status."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import typer
from rich.console import Console
from rich.markup import escape

EXIT_OK = 0
EXIT_FAILED = 1  # the run or command failed
EXIT_USAGE = 2  # bad flags, config or input file (Typer/Click also use 2 for usage errors)
EXIT_DATA = 3  # a dataset is missing or cannot be downloaded
EXIT_NOT_FOUND = 4  # a run, user or item that does not exist
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

err_console = Console(stderr=True)


def print_status(event) -> None:
    """An engine event sink for commands without a progress display: status lines on stderr, warnings in yellow."""
    from kirec_tui.event_text import LEVEL_STYLES

    if hasattr(event, "message"):
        err_console.print(
            f"[{LEVEL_STYLES.get(getattr(event, 'level', 'info'), 'dim')}]{event.message}[/]", highlight=False
        )


def fail(message: str, code: int) -> typer.Exit:
    # The message is text: a "[method.id]" in it is a bench table's name, not markup for rich to swallow.
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


# Known engine errors by the module that defines (or exports) them, in the order they are tried, and their exit code.
# They are looked up only in modules already imported: an error cannot have been raised by a module that never
# loaded, and importing the store (SQLAlchemy) just to classify a bad flag would cost the user half a second.
_KNOWN_ERRORS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("engine.data.errors", ("DatasetNotFoundError", "DownloadError"), EXIT_DATA),
    ("engine.config", ("ConfigError",), EXIT_USAGE),  # a file or value the user gave is wrong
    ("engine.data.errors", ("DataError",), EXIT_USAGE),
    ("engine.store", ("StoreError",), EXIT_USAGE),
    ("engine.extraction.prompts", ("PromptError",), EXIT_USAGE),
    ("engine.extraction.backends.base", ("BackendError",), EXIT_USAGE),
    ("engine.semantic.encoders", ("EncoderError",), EXIT_USAGE),
    ("engine.store", ("RunNotFoundError",), EXIT_NOT_FOUND),
    ("engine.trained", ("RunNotReadyError",), EXIT_NOT_FOUND),  # no checkpoint to serve (yet)
    ("engine.services.errors", ("NotFoundError",), EXIT_NOT_FOUND),  # a user or item that is not there
)


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code of a known engine error; None for anything else (a real bug)."""
    for module_name, names, code in _KNOWN_ERRORS:
        module = sys.modules.get(module_name)
        classes = tuple(c for c in (getattr(module, n, None) for n in names) if isinstance(c, type))
        if classes and isinstance(exc, classes):
            return code
    return None


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Map known engine exceptions to exit codes; anything else is a real bug and keeps its traceback."""
    try:
        yield
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED) from None
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        raise fail(str(exc), code) from None
