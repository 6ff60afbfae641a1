"""Prompt use cases: the prompt files, loading one, checking an edited prompt against a dataset, its preview
on an item, saving an edit as a new version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.extraction.prompts import Prompt


def prompts_dir(chosen: str | Path | None = None) -> Path:
    """`chosen`, or the project's prompts/ folder."""
    from engine.extraction.prompts import PROMPTS_DIR

    return Path(chosen) if chosen else PROMPTS_DIR


def prompt_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.toml"))


def load(path: str | Path) -> "Prompt":
    """Raises PromptError (one line naming the file) for a file that does not parse."""
    from engine.extraction.prompts import load_prompt

    return load_prompt(path)


@dataclass
class PromptCheck:
    prompt: "Prompt | None"  # the parsed prompt, when valid
    error: str | None  # one line, when not


def check(text: str, source: Path | None, dataset=None) -> PromptCheck:
    """Parses `text` and validates it (against `dataset`'s text fields when given)."""
    from engine.extraction.prompts import PromptError, dataset_fields, parse_prompt, validate_prompt

    try:
        prompt = parse_prompt(text, source)
        validate_prompt(prompt, dataset_fields(dataset.item_text[1:]) if dataset is not None else None)
    except PromptError as exc:
        return PromptCheck(None, str(exc))
    return PromptCheck(prompt, None)


@dataclass
class Preview:
    system: str | None
    user: str


def preview(prompt: "Prompt", dataset, item: int) -> Preview:
    """What the LLM is sent for one item."""
    return Preview(prompt.system or None, prompt.render(dataset.item_text[item]))


def save_version(prompt: "Prompt", text: str, folder: Path) -> Path:
    """`text` saved as the next version of `prompt` in `folder`; raises PromptError for an invalid text."""
    from engine.extraction.prompts import save_prompt_version

    return save_prompt_version(prompt, text, folder)
