"""Child-process plumbing shared by the engine and the front ends."""

from __future__ import annotations

import contextlib
import ctypes
import sys

PR_SET_PDEATHSIG = 1


def signal_when_parent_dies(signum: int) -> None:
    """Ask the kernel to send this process `signum` when its parent dies, even by SIGKILL (Linux); elsewhere
    nothing. A child that waits for a parent's word would otherwise outlive it, orphaned."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum))
