"""Downloads, served by a fake opener: zip extraction, checksum verification, atomicity, no-network errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import urllib.error
import zipfile

import pytest

from engine.data import DataError, DownloadError, download_dataset, get_spec, load_raw
from engine.data import registry

ML_SMALL_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,4.0,11\n1,3,4.0,12\n"
MOVIES = b"movieId,title,genres\n1,Toy Story (1995),Animation\n2,Heat (1995),Crime\n3,Up (2009),Animation\n"


class FakeResponse(io.BytesIO):
    """What urlopen returns, as far as download_dataset uses it: a readable context manager."""


class FakeOpener:
    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requested: list[str] = []

    def __call__(self, url: str, timeout: float | None = None) -> FakeResponse:
        self.requested.append(url)
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return FakeResponse(self.files[url])


def grouplens_zip(files: dict[str, bytes], top: str = "ml-latest-small") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{top}/", b"")
        for name, data in files.items():
            zf.writestr(f"{top}/{name}", data)
    return buffer.getvalue()


@pytest.fixture
def known_sums(monkeypatch):
    """Make the registry's ml-latest-small sums those of the small files these tests serve."""
    spec = get_spec("ml-latest-small")
    sums = {"ratings.csv": hashlib.sha256(RATINGS).hexdigest(), "movies.csv": hashlib.sha256(MOVIES).hexdigest()}
    patched = registry.DatasetSpec(**{**spec.__dict__, "sha256": sums})
    monkeypatch.setattr(registry, "_SPECS", {**registry._SPECS, "ml-latest-small": patched})
    return sums


def test_download_extracts_verifies_and_is_loadable(tmp_path, known_sums):
    opener = FakeOpener(
        {ML_SMALL_URL: grouplens_zip({"ratings.csv": RATINGS, "movies.csv": MOVIES, "README.txt": b"terms"})}
    )
    messages: list[str] = []
    folder = download_dataset(
        "ml-latest-small", tmp_path / "data", on_event=lambda e: messages.append(e.message), opener=opener
    )
    assert folder == tmp_path / "data" / "ml-latest-small"
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "movies.csv", "ratings.csv"]
    assert (folder / "ratings.csv").read_bytes() == RATINGS
    assert "2 files verified by sha256" in messages[-1]
    assert list((tmp_path / "data").iterdir()) == [folder]  # the staging folder is gone
    assert len(load_raw(folder, "movielens-csv", "ml-latest-small")) == 3

    # a complete verified copy is not fetched again
    again = FakeOpener({})
    assert download_dataset("ml-latest-small", tmp_path / "data", opener=again) == folder
    assert again.requested == []


def test_checksum_mismatch_writes_nothing_and_keeps_a_good_copy(tmp_path, known_sums):
    bad = FakeOpener({ML_SMALL_URL: grouplens_zip({"ratings.csv": RATINGS + b"2,1,1.0,5\n", "movies.csv": MOVIES})})
    with pytest.raises(DownloadError) as info:
        download_dataset("ml-latest-small", tmp_path / "data", opener=bad)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"ratings.csv from {ML_SMALL_URL}: sha256 ")
    assert known_sums["ratings.csv"] in message and "nothing was written" in message
    assert list((tmp_path / "data").iterdir()) == []

    # a good movies.csv already there is not replaced, a corrupt ratings.csv is
    folder = tmp_path / "data" / "ml-latest-small"
    folder.mkdir()
    (folder / "movies.csv").write_bytes(MOVIES)
    (folder / "ratings.csv").write_bytes(b"truncated")
    before = (folder / "movies.csv").stat().st_mtime_ns
    good = FakeOpener({ML_SMALL_URL: grouplens_zip({"ratings.csv": RATINGS, "movies.csv": MOVIES})})
    download_dataset("ml-latest-small", tmp_path / "data", opener=good)
    assert (folder / "ratings.csv").read_bytes() == RATINGS
    assert (folder / "movies.csv").stat().st_mtime_ns == before


def test_no_network_names_url_reason_and_manual_fallback(tmp_path):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(DownloadError) as info:
        download_dataset("ml-1m", tmp_path / "data", opener=offline)
    message = str(info.value)
    assert "\n" not in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert "Temporary failure in name resolution" in message
    assert f"unzip its files into {tmp_path / 'data' / 'ml-1m'}/" in message
    assert not (tmp_path / "data" / "ml-1m").exists()


def test_http_error_and_bad_zip(tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404 Not Found"):
        download_dataset("ml-100k", tmp_path / "data", opener=FakeOpener({}))
    url = get_spec("ml-100k").urls[0]
    with pytest.raises(DownloadError, match="not a valid zip archive"):
        download_dataset("ml-100k", tmp_path / "data", opener=FakeOpener({url: b"<html>moved</html>"}))
    assert list((tmp_path / "data").iterdir()) == []


def test_zip_with_unsafe_paths_is_rejected(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ml-100k/u.data", b"1\t2\t3\t4\n")
        zf.writestr("ml-100k/../../evil.txt", b"x")
    url = get_spec("ml-100k").urls[0]
    with pytest.raises(DownloadError, match="unsafe path"):
        download_dataset("ml-100k", tmp_path / "data", opener=FakeOpener({url: buffer.getvalue()}))
    assert not (tmp_path / "evil.txt").exists() and list((tmp_path / "data").iterdir()) == []


def test_ml100k_zip_gives_the_original_layout(tmp_path):
    url = get_spec("ml-100k").urls[0]
    files = {
        "u.data": b"196\t242\t3\t881250949\n",
        "u.item": b"242|Kolya (1996)|24-Jan-1997||x|" + b"|".join([b"0"] * 19),
    }
    folder = download_dataset("ml-100k", tmp_path / "data", opener=FakeOpener({url: grouplens_zip(files, "ml-100k")}))
    assert (folder / "u.data").exists() and load_raw(folder, "movielens-100k", "ml-100k").item_text["242"][
        "year"
    ] == "1996"


def test_amazon_raw_files_are_fetched_as_is(tmp_path):
    spec = get_spec("amazon-beauty")
    reviews = gzip.compress(json.dumps({"reviewerID": "R", "asin": "P", "overall": 5.0, "unixReviewTime": 1}).encode())
    meta = gzip.compress(b"{'asin': 'P', 'title': 'Mascara'}\n")
    opener = FakeOpener(dict(zip(spec.urls, (reviews, meta))))
    folder = download_dataset("amazon-beauty", tmp_path / "data", opener=opener)
    assert opener.requested == list(spec.urls)
    assert load_raw(folder, "amazon-raw", "amazon-beauty").item_text == {"P": {"title": "Mascara"}}


def test_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        download_dataset("nope", tmp_path, opener=FakeOpener({}))
