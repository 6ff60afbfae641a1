"""When a finished run already answers a bench cell: the same config (up to fields that cannot change the result),
the same dataset fingerprint and the same code version, with its per-user test ranks still on disk.

Read through RunStore's public methods only (list_runs, get_run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from engine.bench.artifacts import RANKS_KIND
from engine.config import RunConfig, flatten_dotted

# Where a run was recorded or cached, what it was called and how many CPU threads it used do not change its numbers;
# the data's content is covered by the dataset fingerprint.
IGNORED_FIELDS = (
    "name",
    "db",
    "workspace",
    "train.checkpoint_dir",
    "train.num_threads",
    "data.cache_dir",
    "data.data_root",
    "knowledge.extraction_cache",
    "knowledge.embedding_cache",
)

_DEFAULTS = flatten_dotted(json.loads(json.dumps(RunConfig().to_dict(), default=str)))


def config_identity(config: Mapping[str, Any]) -> str:
    """A canonical text of the fields of `config` (a RunConfig.to_dict(), live or as stored) that define a result."""
    # A field added after a run was recorded is absent from its stored config: it counts at its default, the
    # behaviour that run had (new fields keep the old behaviour by default).
    given = flatten_dotted(json.loads(json.dumps(config, default=str)))
    flat = {k: v for k, v in {**_DEFAULTS, **given}.items() if k not in IGNORED_FIELDS}
    return json.dumps(flat, sort_keys=True, default=str)


def ranks_path(detail: Any) -> Path | None:
    """The run's per-user test ranks file, if it recorded one that still exists."""
    paths = [a.path for a in detail.artifacts if a.kind == RANKS_KIND]
    if paths and Path(paths[-1]).is_file():
        return Path(paths[-1])
    return None


class FinishedRuns:
    """Looks up, per cell, the newest FINISHED run of the store that answers it (details are read once)."""

    def __init__(self, store: Any):
        self.store = store
        self._details: dict[int, Any] = {}

    def find(self, config: Mapping[str, Any], dataset: str, fingerprint: str, code_version: str | None) -> Any | None:
        """`code_version` None accepts a run of any code version (the newest wins)."""
        wanted = config_identity(config)
        method = config["knowledge"]["method"]
        for summary in self.store.list_runs(
            status="FINISHED", dataset=dataset, method=method, order_by="id", descending=True
        ):
            detail = self.detail(summary.id)
            if (
                detail.dataset_fingerprint == fingerprint
                and code_version in (None, detail.code_version)
                and config_identity(detail.config) == wanted
                and ranks_path(detail) is not None
            ):
                return detail
        return None

    def detail(self, run_id: int) -> Any:
        if run_id not in self._details:
            self._details[run_id] = self.store.get_run(run_id)
        return self._details[run_id]
