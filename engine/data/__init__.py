"""kirec's data layer: find a dataset, read its files, preprocess them into a `SequenceDataset`, cache the result.

    spec, folder = find_dataset("amazon-beauty", data_root=None)   # registry name, or a folder path
    ds = load_dataset(cfg.data, on_event=sink)                      # cached by input contents + options
    dataset_stats(ds)

Formats are described in `engine.data.formats` (the generic bring-your-own format in its `generic` module).
"""

from engine.data.dataset import PAD, RawInteractions, SequenceDataset
from engine.data.download import download_dataset
from engine.data.errors import DataError, DataFormatError, DatasetNotFoundError, DownloadError
from engine.data.formats import FORMATS, detect_format, load_raw
from engine.data.preprocess import PREPROCESS_VERSION, PreprocessOptions, build_sequences, load_dataset
from engine.data.registry import DatasetSpec, get_spec, list_datasets
from engine.data.root import candidate_roots, find_dataset
from engine.data.stats import dataset_stats

__all__ = [
    "FORMATS",
    "PAD",
    "PREPROCESS_VERSION",
    "DataError",
    "DataFormatError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "DownloadError",
    "PreprocessOptions",
    "RawInteractions",
    "SequenceDataset",
    "build_sequences",
    "candidate_roots",
    "dataset_stats",
    "detect_format",
    "download_dataset",
    "find_dataset",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "load_raw",
]
