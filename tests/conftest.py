"""Fixtures every layer's tests share: a tiny dataset in the documented generic format, the shared real data
when present, a fixed store clock and a runs database built from tui_support's specs, one torch thread.

The tests are grouped by layer: tests/unit (the engine's parts), tests/services (the use cases and the CLI over
them, real processes included), tests/tui (the Textual app, its snapshots); each layer's own fixtures are in its
conftest.py. Helpers that are plain functions (building a runs database, running the CLI in-process) are modules
beside this file: tests/tui_support.py, tests/cli_support.py."""

from __future__ import annotations

import atexit
import gc
from pathlib import Path

import pytest

# When pytest is done (its report written, its own end-of-session garbage collection for unraisable exceptions
# run), the interpreter's final collection walks every object torch, textual and the models left: seconds of
# exit time for no check. atexit runs after pytest's main has returned; frozen objects just go with the process.
atexit.register(gc.freeze)
# The suite's heap is large (torch, textual, transformers, hypothesis, sqlalchemy), and at the default thresholds
# every 10th middle-generation collection was a full one walking all of it: 20 % of a TUI-heavy run's time went
# in the collector. Full collections 10x rarer; young garbage (an unclosed sqlite connection's cycle, say) is
# still collected as soon as before, by the young generations.
gc.set_threshold(*gc.get_threshold()[:2], 100)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

from tests.data_support import write_generic_dataset  # noqa: E402  (the tiny_dataset fixture builds one)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_generic_dataset(tmp_path / "tiny")


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "ml-latest-small" / "ratings.csv").exists():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


# -- the TUI tests' fixtures (their builders are in tui_support.py) ------------------------------------------------


@pytest.fixture
def fixed_clock(monkeypatch):
    """The store's clock, fixed at tui_support.BASE_TIME and moved only by the builder: stable snapshots."""
    from types import SimpleNamespace

    from engine.store import queries as store_queries
    from tests.tui_support import FixedClock

    clock = FixedClock()
    monkeypatch.setattr(store_queries, "time", SimpleNamespace(time=clock.time, perf_counter=clock.time))
    return clock


@pytest.fixture
def runs_db(tmp_path: Path, fixed_clock) -> tuple[Path, list[int]]:
    """A runs.db holding tui_support.RUN_SPECS, and their run ids in spec order."""
    from tests.tui_support import build_runs_db

    path = tmp_path / "runs.db"
    return path, build_runs_db(path, fixed_clock)


@pytest.fixture
def one_torch_thread():
    """Tests that train use one torch thread: on a loaded 2-core machine more threads only contend."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
