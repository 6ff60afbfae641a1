"""Writing an export (CSV/JSON text) to a file without ever destroying data: not the database it was read from,
not an existing file unless asked, and never a half-written file (a temporary file in the same folder, renamed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.store.db import StoreError


class ExportTargetExistsError(StoreError):
    """The export's target file exists and replacing it was not asked for."""


def check_export_target(target: str | Path, database: str | Path, force: bool = False) -> Path:
    """Refuse the runs database `database` itself (and its -wal/-shm/-journal files) even with `force`, and any
    other existing file unless `force`; call it before the export's work, so a refusal costs nothing."""
    target = Path(target).expanduser()
    if _is_database_file(target, Path(database)):
        raise StoreError(f"{target}: is the runs database being exported; write the export to another file")
    if target.is_dir():
        raise StoreError(f"{target}: is a directory; give a file name for the export")
    if target.exists() and not force:
        raise ExportTargetExistsError(f"{target}: exists already; pass --force to replace it")
    return target


def write_export(target: str | Path, text: str, database: str | Path, force: bool = False) -> Path:
    """Write `text` to `target` after `check_export_target`, through a temporary file renamed into place."""
    target = check_export_target(target, database, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _is_database_file(target: Path, database: Path) -> bool:
    for suffix in ("", "-wal", "-shm", "-journal"):
        protected = Path(f"{database}{suffix}")
        if target.absolute() == protected.absolute() or target.resolve() == protected.resolve():
            return True
        try:
            if target.exists() and protected.exists() and os.path.samefile(target, protected):
                return True  # a hard link or another spelling of the same file
        except OSError:
            pass
    return False
