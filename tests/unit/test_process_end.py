"""How a `kirec` process ends after a process group: at once with the command's status and its output flushed,
without the interpreter's finalization (atexit handlers are the visible part of it); otherwise as usual."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from kirec_tui.cli.process_end import end_now_if_asked, exit_status


def _child(body: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        """
        import atexit, sys
        from kirec_tui.cli import process_end
        atexit.register(lambda: print("finalized"))
        sys.stdout.write("written, not yet flushed")
        """
    ) + textwrap.dedent(body)
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a pipe is: block-buffered
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=buffered)


def test_after_a_process_group_the_process_ends_with_the_status_and_its_output_but_no_finalization():
    done = _child("process_end.end_without_finalization()\nprocess_end.end_now_if_asked(3)\nprint('after')\n")
    assert done.returncode == 3
    assert done.stdout == "written, not yet flushed"  # flushed before the end; nothing after it ran


def test_a_message_status_is_printed_and_ends_with_one():
    done = _child("process_end.end_without_finalization()\nprocess_end.end_now_if_asked('run failed')\n")
    assert (done.returncode, done.stderr.strip()) == (1, "run failed")
    assert "finalized" not in done.stdout


def test_without_a_process_group_the_process_ends_as_usual():
    done = _child("process_end.end_now_if_asked(3)\nprint(' then this')\nsys.exit(4)\n")
    assert done.returncode == 4
    assert done.stdout == "written, not yet flushed then this\nfinalized\n"


def test_in_this_process_without_the_flag_it_returns():
    assert end_now_if_asked(5) is None


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (2, 2), (130, 130), ("a message", 1)])
def test_the_status_is_the_one_the_interpreter_would_give(code, status):
    assert exit_status(code) == status
