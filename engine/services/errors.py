"""The errors front ends catch, in one place: those of the use cases (NotFoundError) and, imported on first
use so that naming one costs nothing until it is needed, the engine's own (StoreError, PromptError, ...)."""

from __future__ import annotations

import importlib
from typing import Any


class NotFoundError(LookupError):
    """A user, item or run named by the user that is not there; the message is one line."""


_ENGINE_ERRORS = {
    "ConfigError": "engine.config",
    "StoreError": "engine.store.db",
    "ExportTargetExistsError": "engine.store.export_file",
    "PromptError": "engine.extraction.prompts",
    "BackendError": "engine.extraction.backends.base",
    "DataError": "engine.data.errors",
    "RunNotReadyError": "engine.trained",
}


def __getattr__(name: str) -> Any:
    module = _ENGINE_ERRORS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.services.errors' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
