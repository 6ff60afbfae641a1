"""Prompt use cases: the prompt files (labelled by file and version), loading one, checking an edited prompt
against a dataset, its preview on an item, the sample items it is tried on, the text diff of two versions,
saving an edit as a new version."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.extraction.prompts import Prompt

SAMPLE_ITEMS = 5  # the default sample: the most popular items


def prompts_dir(chosen: str | Path | None = None) -> Path:
    """`chosen` (a `knowledge.prompts_dir` setting), or the repository's prompts/ folder."""
    from engine.extraction.prompts import prompts_folder

    return prompts_folder(chosen)


@dataclass(frozen=True)
class PromptFile:
    path: Path
    family: str  # the first version's file stem: movies for movies.toml and movies.v2.toml
    version: int  # 1 for movies.toml, N for movies.vN.toml: the order the versions were saved in

    @property
    def label(self) -> str:
        """What a person calls this version: "movies.toml v2"."""
        return version_label(self.path)


def version_label(path: str | Path | None, edited: bool = False) -> str:
    """ "movies.toml v1" for movies.toml, "movies.toml v3" for movies.v3.toml; "(edited)" for unsaved text."""
    from engine.extraction.prompts import version_of

    if path is None:
        return "unsaved prompt"
    family, version = version_of(path)
    return f"{family}.toml v{version}" + (" (edited)" if edited else "")


def prompt_files(folder: Path) -> list[PromptFile]:
    """The prompt files of `folder`, each file's versions together in save order (v2 before v10)."""
    from engine.extraction.prompts import version_of

    found = [PromptFile(path, *version_of(path)) for path in Path(folder).glob("*.toml")]
    return sorted(found, key=lambda f: (f.family, f.version, f.path.name))


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


def popular_items(dataset, count: int = SAMPLE_ITEMS) -> list[int]:
    """The most popular items (ties by index): the ones a person recognises when judging the answers."""
    popularity = dataset.item_popularity()
    order = sorted(range(1, dataset.num_items + 1), key=lambda i: (-int(popularity[i]), i))
    return order[:count]


def choose_samples(dataset, text: str, count: int = SAMPLE_ITEMS) -> list[int]:
    """The item indices of the raw item ids in `text` (separated by commas or spaces, in that order, repeats
    dropped); blank: the `count` most popular items. Raises NotFoundError (one line) naming the ids the dataset
    does not have."""
    from engine.services.errors import NotFoundError

    wanted = list(dict.fromkeys(text.replace(",", " ").split()))
    if not wanted:
        return popular_items(dataset, count)
    index = {raw: i for i, raw in enumerate(dataset.item_ids) if i > 0}
    missing = [raw for raw in wanted if raw not in index]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise NotFoundError(f"not in {dataset.name}: {shown}")
    return [index[raw] for raw in wanted]


def text_diff(old: "Prompt", new: "Prompt", old_label: str, new_label: str, context: int = 2) -> list[str]:
    """The unified diff of the two prompts' files (empty when the texts are equal), lines without newlines."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            old.text.splitlines(), new.text.splitlines(), old_label, new_label, n=context, lineterm=""
        )
    ]


def save_version(prompt: "Prompt", text: str, folder: Path) -> Path:
    """`text` saved as the next version of `prompt` in `folder`; raises PromptError for an invalid text."""
    from engine.extraction.prompts import save_prompt_version

    return save_prompt_version(prompt, text, folder)
