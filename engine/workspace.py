"""Where kirec keeps what it writes: one workspace folder that the runs database, the checkpoints and the dataset,
extraction and embedding caches resolve from.

The root is the config's top-level `workspace` (--workspace > KIREC_WORKSPACE > the config file, merged by
`load_config` like every setting); unset, it is the current folder, as before there was a workspace. A relative
path setting (db, data.cache_dir, train.checkpoint_dir, knowledge.extraction_cache, knowledge.embedding_cache)
resolves inside the root, an absolute one is taken as given. A relative `workspace` itself resolves against the
current folder. Where the datasets are read from (data.dataset, data.data_root) is not the workspace's: a
path the user typed stays relative to the current folder.

Torch-free (engine.config checks the root at load), and nothing here creates a folder: each writer creates
what it writes into (the store, the caches, the checkpoint folder), so a read-only command creates nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import RunConfig

DEFAULT_DB = "runs.db"
DATASET_CACHE = Path(".cache") / "datasets"
EXTRACTION_CACHE = Path(".cache") / "extractions.sqlite"
EMBEDDING_CACHE = Path(".cache") / "embeddings"  # a folder: the cache is its embeddings.sqlite

# The settings that place files; a command that only needs the paths reads just these (engine.config keys=).
WORKSPACE_KEYS = (
    "workspace",
    "db",
    "data.cache_dir",
    "train.checkpoint_dir",
    "knowledge.extraction_cache",
    "knowledge.embedding_cache",
)


def _join(base: Path, setting: str | Path) -> Path:
    path = Path(setting).expanduser()
    return path if path.is_absolute() else base / path


def resolve_root(setting: str | Path | None, cwd: str | Path | None = None) -> Path:
    """The workspace folder: `setting` (relative: inside `cwd`), or `cwd` itself (default: the current folder)."""
    base = Path(os.path.normpath(Path(cwd or Path.cwd()).absolute()))
    if setting is None or not str(setting).strip():
        return base
    return Path(os.path.normpath(_join(base, setting)))  # ../W: no ".." in the paths runs record


def workspace_problem(root: Path) -> str | None:
    """Why `root` cannot be the workspace (an existing file, or under one, or in a folder it cannot be created in);
    None when it is a folder or can be created. Creates nothing."""
    if root.is_dir():
        return None
    if root.exists():
        return f"{root} is a file, not a folder"
    ancestor = root.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{root} cannot be created: {ancestor} is a file"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{root} cannot be created: {ancestor} is not writable"
    return None


@dataclass(frozen=True)
class Workspace:
    """Every path kirec writes to, resolved (absolute). Build one with `of(cfg)` or `at(root, ...)`."""

    root: Path
    db: Path
    dataset_cache: Path  # folder of preprocessed datasets
    extraction_cache: Path  # SQLite file of LLM answers
    embedding_cache: Path  # folder holding embeddings.sqlite
    checkpoint_setting: str | None = None  # train.checkpoint_dir as set; checkpoint_dir() resolves and checks it

    @classmethod
    def at(
        cls,
        root: str | Path | None = None,
        *,
        db: str | Path | None = DEFAULT_DB,
        dataset_cache: str | Path | None = None,
        extraction_cache: str | Path | None = None,
        embedding_cache: str | Path | None = None,
        checkpoint_dir: str | None = None,
        cwd: str | Path | None = None,
    ) -> "Workspace":
        """The workspace at `root` (None: `cwd`, by default the current folder) with these settings (None: the
        defaults inside it)."""
        base = resolve_root(root, cwd)

        def place(setting: str | Path | None, default: str | Path) -> Path:
            return _join(base, setting if setting is not None and str(setting).strip() else default)

        return cls(
            base,
            place(db, DEFAULT_DB),
            place(dataset_cache, DATASET_CACHE),
            place(extraction_cache, EXTRACTION_CACHE),
            place(embedding_cache, EMBEDDING_CACHE),
            checkpoint_dir,
        )

    @classmethod
    def of(cls, cfg: "RunConfig", cwd: str | Path | None = None) -> "Workspace":
        """The workspace a config names; a relative `workspace` resolves inside `cwd` (default: the current folder)."""
        return cls.at(
            cfg.workspace,
            db=cfg.db,
            dataset_cache=cfg.data.cache_dir,
            extraction_cache=cfg.knowledge.extraction_cache,
            embedding_cache=cfg.knowledge.embedding_cache,
            checkpoint_dir=cfg.train.checkpoint_dir,
            cwd=cwd,
        )

    def path(self, setting: str | Path) -> Path:
        """A path setting as this workspace reads it: relative inside the root, absolute as given."""
        return _join(self.root, setting)

    def checkpoint_dir(self) -> Path:
        """The folder a run's checkpoints go to, checked before any run row exists (raises ConfigError).

        Unset: beside the database, `<db folder>/<db stem>.checkpoints`, so each database keeps its own runs'
        files. A relative path resolves inside the workspace and may not leave it (a config file from elsewhere
        must not write outside the workspace); an absolute path is taken as given."""
        from engine.config import ConfigError

        setting = self.checkpoint_setting
        if setting is None or not str(setting).strip():
            folder = self.db.parent / f"{self.db.stem}.checkpoints"
        else:
            given = Path(setting).expanduser()
            if given.is_absolute():
                folder = given
            else:
                root = Path(os.path.normpath(self.root))
                folder = Path(os.path.normpath(root / given))
                if not folder.is_relative_to(root):
                    raise ConfigError(
                        f"train.checkpoint_dir: {setting!r} leads to {folder}, outside the workspace {root}; "
                        "give an absolute path to write elsewhere on purpose"
                    )
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"train.checkpoint_dir: {folder} is an existing file, not a folder")
        return folder
