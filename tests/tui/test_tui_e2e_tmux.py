"""End to end in a real terminal: tmux runs `kirec-tui`, keys start a short run from the Train screen,
and the Runs screen then lists it FINISHED. Skips where tmux is not installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
RUN_NAME = "e2e-tmux-run"
# The run's small settings come from the environment, which fills the form's defaults (as a user's KIREC_*
# settings do), so that no key typed under load can be lost between them and the LLM. knowledge.method=id: the UI
# path is the same for every method, and LLM extraction would only slow the test.
SMALL = {
    "KIREC_MODEL__HIDDEN_SIZE": "16",
    "KIREC_MODEL__NUM_LAYERS": "1",
    "KIREC_MODEL__MAX_LEN": "12",
    "KIREC_TRAIN__BATCH_SIZE": "32",
    "KIREC_EVAL__KS": "10",
    "KIREC_KNOWLEDGE__METHOD": "id",
    "KIREC_TRAIN__NUM_THREADS": "1",
    "KIREC_TRAIN__EPOCHS": "2",
}

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def screen_text(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, needle: str, timeout: float, fail_on: str | None = None) -> str:
    """Poll the pane until `needle` shows (the app works at its own pace; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        text = screen_text(session)
        if needle in text:
            return text
        if fail_on is not None and fail_on in text:
            raise AssertionError(f"{fail_on!r} appeared while waiting for {needle!r}:\n{text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} did not appear within {timeout:.0f}s; the pane shows:\n{text}")
        time.sleep(0.2)


def styled_screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-e", "-t", session)  # with colours: focus changes show too


def send(session: str, *keys: str, literal: bool = False) -> None:
    """Send keys, then wait until the pane changes (the app handled them) before the next group: keys that
    reach the app in one burst are not all handled like separate key presses. Bounded, since a key may
    legitimately change nothing on screen."""
    before = styled_screen(session)
    tmux("send-keys", "-t", session, *(("-l",) if literal else ()), *keys)
    deadline = time.monotonic() + 5
    while styled_screen(session) == before and time.monotonic() < deadline:
        time.sleep(0.05)


def _shows(session: str, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in screen_text(session):
            return True
        time.sleep(0.2)
    return False


def test_a_run_started_in_the_terminal_appears_in_runs(tmp_path, tiny_dataset):
    session = f"kirec-e2e-{time.monotonic_ns()}"
    command = (
        f"cd {tmp_path} && TERM=xterm-256color {sys.executable} -m kirec_tui.app "
        f"--db {tmp_path / 'runs.db'} --data-root {tmp_path}"
    )
    # The dataset too: a second Tab then its path once lost the Tab's focus change under load (the pane changed
    # with the cursor's blink, not the focus), and the path went into the run name.
    small = {**SMALL, "KIREC_DATA__DATASET": str(tiny_dataset)}
    settings = [arg for key, value in small.items() for arg in ("-e", f"{key}={value}")]
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "45", "-e", f"PYTHONPATH={ROOT}", *settings, command)
    try:
        tmux("set-option", "-t", session, "window-size", "manual")
        tmux("resize-window", "-t", session, "-x", "160", "-y", "45")
        wait_for(session, "runs", timeout=60)
        send(session, "2")
        wait_for(session, "Start run", timeout=60)
        # Arriving, the focus is on the form, not in a field (so digits still switch screens); Tab enters the
        # first field (run name) and walks the form in order, selecting a field's text, so typing replaces it.
        send(session, "Tab")
        send(session, RUN_NAME, literal=True)
        wait_for(session, RUN_NAME, timeout=30)  # the name is in its field before the run starts
        # the dataset and epochs come from the environment too: counting Tabs across fields lost one under load
        send(session, "C-r")
        wait_for(session, " FINISHED", timeout=240, fail_on=" FAILED")  # the run's status, not "0 failed" in a log
        # Leave the form field, so that "1" switches to Runs; under load a key can land before the field
        # lets go of focus, so retry until the Runs screen is up.
        for _ in range(10):
            send(session, "Escape")
            send(session, "1")
            if _shows(session, "kirec — Runs", timeout=5):
                break
        # The Runs screen polls the database: wait for the run's row to show its final status.
        deadline = time.monotonic() + 30
        while not any(RUN_NAME in line and "FINISHED" in line for line in screen_text(session).splitlines()):
            assert time.monotonic() < deadline, f"the run never showed FINISHED in Runs:\n{screen_text(session)}"
            time.sleep(0.2)
        row = next(line for line in screen_text(session).splitlines() if RUN_NAME in line)
        assert "tiny" in row and "sasrec" in row
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=30)
