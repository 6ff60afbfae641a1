"""`kirec data list | show | download` end to end through the CLI, on small MovieLens-format files in tmp_path;
downloads are served from a local file:// address (never the internet)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from tests.cli_support import invoke  # in the test's folder, where the caches land

from engine.data import get_spec, registry

# Six users who each rated the same six movies: the 5-core keeps everything (36 interactions).
RATINGS = (
    "userId,movieId,rating,timestamp\n"
    + "".join(f"{u},{m},4.0,{100 * u + m}\n" for u in range(1, 7) for m in range(1, 7))
).encode()
MOVIES = (
    "movieId,title,genres\n"
    + "".join(f"{m},Film {m} ({1990 + m}),{'Drama' if m % 2 else 'Comedy|Drama'}\n" for m in range(1, 7))
).encode()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich tables keep each row on one line, paths unbroken
    monkeypatch.delenv("KIREC_DATA", raising=False)


def write_ml_small(root: Path) -> Path:
    folder = root / "ml-latest-small"
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_bytes(RATINGS)
    (folder / "movies.csv").write_bytes(MOVIES)
    return folder


def table_row(output: str, first_cell: str) -> str:
    rows = [line for line in output.splitlines() if line.strip("│┃ ").startswith(first_cell + " ")]
    assert len(rows) == 1, output
    return rows[0]


def test_data_list_says_where_each_dataset_is_and_how_to_get_the_missing_ones(tmp_path):
    folder = write_ml_small(tmp_path / "data")
    result = invoke("data", "list", "--data-root", str(tmp_path / "data"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert str(folder) in table_row(result.stdout, "ml-latest-small")
    for name in ("ml-1m", "ml-100k", "amazon-beauty"):
        row = table_row(result.stdout, name)
        assert "missing" in row and f"kirec data download {name}" in row


def test_data_show_prints_the_statistics_after_preprocessing(tmp_path):
    write_ml_small(tmp_path / "data")
    result = invoke("data", "show", "ml-latest-small", "--data-root", str(tmp_path / "data"), "--json", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["users"], stats["items"], stats["interactions"]) == (6, 6, 36)
    assert stats["density"] == 1.0 and stats["min_sequence_length"] == stats["max_sequence_length"] == 6
    assert stats["text_coverage"]["title"] == 1.0
    table = invoke("data", "show", "ml-latest-small", "--data-root", str(tmp_path / "data"), cwd=tmp_path)
    assert table.exit_code == 0, table.output
    assert table_row(table.stdout, "interactions").split()[-2] == "36"
    assert "text_coverage: genres" in table.stdout


def test_data_show_of_a_missing_dataset_exits_3_naming_where_it_looked(tmp_path):
    result = invoke("data", "show", "ml-latest-small", "--data-root", str(tmp_path / "empty"), cwd=tmp_path)
    assert result.exit_code == 3
    assert str(tmp_path / "empty" / "ml-latest-small") in result.output and "Traceback" not in result.output


def grouplens_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"ml-latest-small/{name}", data)
    return buffer.getvalue()


@pytest.fixture
def local_source(tmp_path, monkeypatch) -> Path:
    """ml-latest-small's registry entry pointed at a zip on local disk, with these files' checksums."""
    archive = tmp_path / "source" / "ml-latest-small.zip"
    archive.parent.mkdir()
    archive.write_bytes(grouplens_zip({"ratings.csv": RATINGS, "movies.csv": MOVIES}))
    spec = get_spec("ml-latest-small")
    sums = {"ratings.csv": hashlib.sha256(RATINGS).hexdigest(), "movies.csv": hashlib.sha256(MOVIES).hexdigest()}
    patched = registry.DatasetSpec(**{**spec.__dict__, "urls": (archive.as_uri(),), "sha256": sums})
    monkeypatch.setattr(registry, "_SPECS", {**registry._SPECS, "ml-latest-small": patched})
    return archive


def test_data_download_fetches_verifies_and_the_dataset_is_then_found(tmp_path, local_source):
    root = tmp_path / "data"
    result = invoke("data", "download", "ml-latest-small", "--data-root", str(root), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(root / "ml-latest-small")
    assert (root / "ml-latest-small" / "ratings.csv").read_bytes() == RATINGS
    assert "2 files verified by sha256" in result.output
    listed = invoke("data", "list", "--data-root", str(root), cwd=tmp_path)
    assert str(root / "ml-latest-small") in table_row(listed.stdout, "ml-latest-small")
    shown = invoke("data", "show", "ml-latest-small", "--data-root", str(root), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["interactions"] == 36


def test_data_download_of_a_corrupt_archive_exits_3_and_writes_nothing(tmp_path, local_source):
    local_source.write_bytes(grouplens_zip({"ratings.csv": RATINGS + b"7,1,1.0,5\n", "movies.csv": MOVIES}))
    root = tmp_path / "data"
    result = invoke("data", "download", "ml-latest-small", "--data-root", str(root), cwd=tmp_path)
    assert result.exit_code == 3
    assert "ratings.csv" in result.output and "Traceback" not in result.output
    assert not (root / "ml-latest-small").exists()
