"""How a `kirec` process ends once it has been a DDP rank: without the interpreter's finalization.

DDP keeps gloo's process group, and with it its worker threads, alive until the process ends. A worker can still
be dropping the last reference to a tensor of a finished collective (one Python has let go of) when the main thread
reaches finalization; it then takes the GIL there, Python ends the thread by unwinding it, the unwinding meets a
noexcept C++ frame, and the process aborts (SIGABRT, "terminate called without an active exception"): torchrun
reports the run failed although it finished. Under load this is common (benchmarks: 8 of 20 two-rank exits of a
minimal DDP script beside CPU hogs aborted; with os._exit, 0 of 20). Everything a rank writes is written and closed
by then (the store is closed when the run returns), so ending at once loses nothing: the streams are flushed first.
"""

from __future__ import annotations

import os
import sys

_after_a_process_group = False


def end_without_finalization() -> None:
    """Called by a command once this process has joined (and left) a process group."""
    global _after_a_process_group
    _after_a_process_group = True


def exit_status(code: object) -> int:
    """sys.exit's argument as the process's status, as the interpreter maps it (None: 0; a message: 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def end_now_if_asked(code: object) -> None:
    """After a process group: flush the streams and end the process with `code`'s status, skipping the
    finalization (see the module's note). Otherwise nothing: the caller exits as usual."""
    if not _after_a_process_group:
        return
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what the interpreter would print for sys.exit("message")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say
            pass
    os._exit(exit_status(code))
