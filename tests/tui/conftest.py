"""Fixtures of the workbench's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The async tests run on asyncio (Textual's loop) through anyio's pytest plugin."""
    return "asyncio"
