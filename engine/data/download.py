"""Fetching a registered dataset from its canonical URLs into `<root>/<folder>`.

Everything is downloaded and extracted into a staging folder beside the target, checked against the SHA-256
sums the registry knows, and only then renamed into place, so an interrupted or corrupt download never
replaces a good copy. A folder that already holds a complete, verified copy is left alone.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from engine.data.errors import DownloadError
from engine.data.registry import DatasetSpec, require_spec
from engine.data.root import match_layout
from engine.events import EventSink, Status, ignore_events

CHUNK = 1 << 20
Opener = Callable[..., Any]  # urllib.request.urlopen's shape: opener(url, timeout=...) -> response


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _by_hand(url: str, target: Path) -> str:
    name = url.rsplit("/", 1)[-1]
    if name.endswith(".zip"):
        return f"download {name} by hand and unzip its files into {target}/"
    return f"download {name} by hand and put it in {target}/"


def _fetch(url: str, dest: Path, opener: Opener, timeout: float, target: Path, emit: EventSink) -> None:
    emit(Status(f"downloading {url}"))
    try:
        with opener(url, timeout=timeout) as response, dest.open("wb") as out:
            size = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}; {_by_hand(url, target)}"
        ) from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not download {url}: {exc.reason}; {_by_hand(url, target)}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DownloadError(f"could not download {url}: {reason}; {_by_hand(url, target)}") from None
    emit(Status(f"downloaded {dest.name} ({size / 1e6:.1f} MB)"))


def _extract_zip(archive: Path, out: Path, url: str, target: Path) -> None:
    """Extract the files of `archive` into `out`, dropping the single top folder GroupLens zips have."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            paths = [PurePosixPath(m.filename) for m in members]
            for path in paths:
                if path.is_absolute() or ".." in path.parts:
                    raise DownloadError(f"{url}: unsafe path {str(path)!r} in the archive; nothing was written")
            strip = len({p.parts[0] for p in paths}) == 1 and all(len(p.parts) > 1 for p in paths)
            for member, path in zip(members, paths):
                dest = out.joinpath(*(path.parts[1:] if strip else path.parts))
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{url}: not a valid zip archive ({exc}); {_by_hand(url, target)}") from None


def _verify(spec: DatasetSpec, folder: Path, url_of: dict[str, str], target: Path) -> int:
    """Check every file in `folder` whose SHA-256 the registry knows; returns how many were checked."""
    checked = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        expected = spec.sha256.get(path.name)
        if expected is None:
            continue
        actual = sha256_of(path)
        if actual != expected:
            raise DownloadError(
                f"{path.name} from {url_of.get(path.name, 'the download')}: sha256 {actual} does not match the "
                f"expected {expected}; nothing was written to {target}/ (corrupt download or changed upstream file)"
            )
        checked += 1
    return checked


def _is_good_copy(spec: DatasetSpec, folder: Path) -> bool:
    """All files of one layout are present and every file with a known sum matches it."""
    found = match_layout(spec, folder) if folder.is_dir() else None
    if found is None:
        return False
    for name, expected in spec.sha256.items():
        path = folder / name
        if path.is_file() and sha256_of(path) != expected:
            return False
    return True


def _install(staged: Path, target: Path, spec: DatasetSpec, emit: EventSink) -> None:
    """Rename staged files into `target`; an existing file is replaced only if a known sum marks it bad."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in staged.rglob("*") if p.is_file()):
        dest = target / path.relative_to(staged)
        if dest.exists():
            expected = spec.sha256.get(dest.name)
            if expected is None or sha256_of(dest) == expected:
                if expected is None and sha256_of(dest) != sha256_of(path):
                    emit(Status(f"kept the existing {dest} (differs from the download)", level="warning"))
                continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)


def download_dataset(
    name: str,
    root: Path,
    on_event: EventSink | None = None,
    opener: Opener = urllib.request.urlopen,
    timeout: float = 60.0,
) -> Path:
    """Fetch registered dataset `name` into `<root>/<folder>` and return that folder."""
    emit = on_event or ignore_events
    spec = require_spec(name)
    root = Path(root)
    target = root / spec.folder
    if _is_good_copy(spec, target):
        emit(Status(f"{name} is already in {target}"))
        return target
    if not spec.urls:
        raise DownloadError(f"{name} has no download location; put {' + '.join(spec.files)} in {target}/ by hand")
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.folder}-download-", dir=root))
    except OSError as exc:
        raise DownloadError(f"cannot write to {root}: {exc.strerror or exc}") from None
    try:
        staged = staging / "files"
        staged.mkdir()
        url_of: dict[str, str] = {}
        for url in spec.urls:
            file_name = url.rsplit("/", 1)[-1]
            fetched = staging / file_name
            _fetch(url, fetched, opener, timeout, target, emit)
            if file_name.endswith(".zip"):
                before = set(staged.rglob("*"))
                _extract_zip(fetched, staged, url, target)
                url_of.update({p.name: url for p in set(staged.rglob("*")) - before})
                fetched.unlink()
            else:
                os.replace(fetched, staged / file_name)
                url_of[file_name] = url
        checked = _verify(spec, staged, url_of, target)
        if match_layout(spec, staged) is None:
            needed = " or ".join(" + ".join(layout.files) for layout in spec.layouts)
            raise DownloadError(
                f"the download of {name} ({', '.join(spec.urls)}) lacks {needed}; nothing was written to {target}/"
            )
        _install(staged, target, spec, emit)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    emit(Status(f"{name} ready in {target}" + (f" ({checked} files verified by sha256)" if checked else "")))
    return target
