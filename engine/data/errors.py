"""The data layer's errors. Every message is one line that names the file, line or dataset concerned."""

from __future__ import annotations


class DataError(Exception):
    """Any problem finding, reading, preprocessing or downloading a dataset."""


class DatasetNotFoundError(DataError):
    """The dataset is in none of the places looked; the message lists them and how to get it."""


class DataFormatError(DataError):
    """A file does not match its format; the message names the file and the line."""


class DownloadError(DataError):
    """A download failed or did not verify; the message names the URL, the reason and the manual fallback."""
