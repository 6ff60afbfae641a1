"""Where datasets live: the data roots searched, and how a dataset name or folder path resolves to files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import engine
from engine.data.errors import DataError, DatasetNotFoundError
from engine.data.formats import detect_format, input_files
from engine.data.registry import DatasetSpec, get_spec, list_datasets


def repo_root() -> Path:
    return Path(engine.__file__).resolve().parents[1]


def candidate_roots(data_root: str | None, cwd: Path | None = None) -> list[Path]:
    """The data roots to search, in order. An explicit root (flag or KIREC_DATA, merged by the config) is the only
    one; otherwise ./data, <repo>/data and the shared folder beside the checkout (../shared/data)."""
    cwd = (cwd or Path.cwd()).resolve()
    if data_root:
        root = Path(data_root).expanduser()
        return [root if root.is_absolute() else cwd / root]
    repo = repo_root()
    roots: list[Path] = []
    for candidate in (cwd / "data", repo / "data", repo.parent / "shared" / "data", cwd.parent / "shared" / "data"):
        candidate = candidate.resolve()
        if candidate not in roots:
            roots.append(candidate)
    return roots


def match_layout(spec: DatasetSpec, folder: Path) -> DatasetSpec | None:
    """`spec` narrowed to the first of its layouts whose files are all in `folder`."""
    for layout in spec.layouts:
        if all((folder / f).is_file() for f in layout.files):
            return dataclasses.replace(spec, format=layout.format, files=layout.files)
    return None


def _local_spec(folder: Path, format_name: str) -> DatasetSpec:
    """The registry's spec if the folder is a registered dataset's folder in one of its layouts; otherwise a spec
    for a dataset the registry does not know, in the format detected from its files."""
    for spec in list_datasets():
        if spec.folder == folder.name:
            found = match_layout(spec, folder)
            if found is not None:
                return found
    return DatasetSpec(
        name=folder.name,
        folder=folder.name,
        format=format_name,
        description=f"local dataset in {folder}",
        files=tuple(p.name for p in input_files(folder, format_name)),
    )


def find_dataset(name_or_path: str, data_root: str | None, cwd: Path | None = None) -> tuple[DatasetSpec, Path]:
    """Resolve a registry name (looked for as <root>/<folder> in each candidate root), a folder under a root, or
    an existing folder path. Raises DatasetNotFoundError listing every place looked."""
    cwd = (cwd or Path.cwd()).resolve()
    roots = candidate_roots(data_root, cwd)
    spec = get_spec(name_or_path)
    looked: list[str] = []
    if spec is not None:
        for root in roots:
            folder = root / spec.folder
            found = match_layout(spec, folder) if folder.is_dir() else None
            if found is not None:
                return found, folder
            looked.append(f"{folder} (no {' + '.join(spec.files)})" if folder.is_dir() else str(folder))
        needed = " or ".join(" + ".join(layout.files) for layout in spec.layouts)
        raise DatasetNotFoundError(
            f"dataset '{spec.name}' not found; looked in: {', '.join(looked)}; get it with "
            f"'kirec data download {spec.name}', or put {needed} in {roots[0] / spec.folder}/"
        )

    path = Path(name_or_path).expanduser()
    direct = path if path.is_absolute() else cwd / path
    candidates = [direct] + ([root / name_or_path for root in roots] if not path.is_absolute() else [])
    for folder in candidates:
        if folder.is_file():  # a data file given for its folder: say so rather than "not found"
            raise DataError(
                f"dataset '{name_or_path}': {folder} is a file; pass the folder that holds it ({folder.parent})"
            )
        if folder.is_dir():
            format_name = detect_format(folder)
            if format_name is not None:
                return _local_spec(folder.resolve(), format_name), folder.resolve()
            looked.append(f"{folder} (no dataset files)")
        else:
            looked.append(str(folder))
    known = ", ".join(s.name for s in list_datasets())
    raise DatasetNotFoundError(
        f"dataset '{name_or_path}' not found: not a registered name ({known}) and no dataset folder at "
        f"{', '.join(looked)}; put interactions.csv (see engine/data/formats/generic.py) in "
        f"{roots[0] / path.name}/ or pass an existing folder"
    )
