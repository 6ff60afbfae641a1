"""Runs use cases: the runs store for reading or writing, listing and exporting runs (filtered, with their
curves), a researcher's tags and notes, deleting and restoring, a trained run reloaded, what it recommends to a
user, and an item's neighbours in a run's own item table."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from engine.events import EPOCH_SECONDS
from engine.services.errors import NotFoundError

if TYPE_CHECKING:
    from engine.store import RunStore, RunSummary
    from engine.trained import TrainedRun

# The filters a listing (and a filtered export) takes: RunStore.list_runs's, `tag` standing for its `label`.
FILTER_NAMES = ("status", "dataset", "method", "text", "tag", "include_deleted")


def open_runs(db: str | Path) -> "RunStore":
    """The database for reading: a missing file is an error (not a new empty one), and a run whose writer
    died reads as INTERRUPTED, not RUNNING."""
    from engine.store import open_store

    return open_store(db, create=False, repair_orphans=True)


def open_workspace_store(db: str | Path) -> "RunStore":
    """The database the workbench writes to, created when missing."""
    from engine.store import open_store

    return open_store(db)


@contextlib.contextmanager
def naming_runs(*run_ids: int) -> Iterator[None]:
    """A missing database means the runs asked for are not found: the error says which."""
    from engine.store import DatabaseNotFoundError

    try:
        yield
    except DatabaseNotFoundError as exc:
        raise DatabaseNotFoundError(exc.path, tuple(run_ids)) from None


def check_export_target(target: str | Path, database: str | Path, force: bool = False) -> Path:
    """Refuses (StoreError) the database itself and its side files always, and an existing file without `force`."""
    from engine.store.export_file import check_export_target as check

    return check(target, database, force=force)


def export_runs(
    store: "RunStore",
    run_ids: list[int] | None,
    fmt: str,
    target: str | Path | None = None,
    force: bool = False,
    curves: bool = False,
    filters: Mapping[str, Any] | None = None,
) -> str:
    """The runs as CSV or JSON text (`curves`: JSON with every per-epoch point); written to `target` (through a
    temporary file and a rename) when given. An existing target raises ExportTargetExistsError unless `force`.

    `filters` (FILTER_NAMES, as `list_runs` takes them) export the runs a listing with them shows, by id; with
    `run_ids` too, those of the ids that pass the filters."""
    from engine.store.export_file import write_export

    if curves and fmt != "json":
        raise ValueError("the per-epoch curves are exported as JSON only: use the json format")
    if target is not None:
        check_export_target(target, store.path, force=force)  # before the query runs
    text = store.export_runs(filtered_run_ids(store, run_ids, filters), fmt, curves=curves)
    if target is not None:
        write_export(target, text, store.path, force=force)
    return text


def filtered_run_ids(
    store: "RunStore", run_ids: Sequence[int] | None, filters: Mapping[str, Any] | None
) -> list[int] | None:
    """`run_ids` narrowed to the runs that pass `filters` (all runs when `run_ids` is None); None: no filter
    and no ids, i.e. every run that is not deleted."""
    if not filters or not any(filters.values()):
        return None if run_ids is None else list(run_ids)
    for run_id in run_ids or ():
        store.get_run(run_id)  # an id that does not exist is an error, not silently filtered out
    passing = [r.id for r in list_runs(store, order_by="id", descending=False, **filters)]
    if run_ids is None:
        return passing
    kept = set(passing)
    return [run_id for run_id in run_ids if run_id in kept]


# -- listing ------------------------------------------------------------------------------------------------


def list_runs(
    store: "RunStore",
    status: str | None = None,
    dataset: str | None = None,
    method: str | None = None,
    text: str | None = None,
    tag: str | None = None,
    include_deleted: bool = False,
    order_by: str = "started_at",
    descending: bool = True,
    limit: int | None = None,
) -> list["RunSummary"]:
    """The runs matching every filter (`text`: a substring of name, dataset, method, backbone, a tag or the note;
    `tag`: exactly that tag), as the store lists them, except that a run whose method combines nothing has no
    fusion: every run's config records `knowledge.fusion`, but only a method that fuses uses it."""
    runs = store.list_runs(
        status=status,
        dataset=dataset,
        method=method,
        text=text,
        label=tag,
        include_deleted=include_deleted,
        order_by=order_by,
        descending=descending,
        limit=limit,
    )
    return [without_unused_fusion(run) for run in runs]


def without_unused_fusion(run: "RunSummary") -> "RunSummary":
    if run.fusion is not None and method_uses_fusion(run.method) is False:
        return dataclasses.replace(run, fusion=None)
    return run


@functools.lru_cache(maxsize=None)
def method_uses_fusion(method: str) -> bool | None:
    """Whether the registered method `method` uses knowledge.fusion; None for a name this kirec does not know
    (a run of an older or newer kirec: its recorded fusion is shown as it is)."""
    from engine import registry

    if method not in registry.choices("method"):
        return None
    return bool(registry.load("method", method).uses_fusion)


# -- a researcher's tags and notes; deleting and restoring --------------------------------------------------


def parse_tags(text: str) -> list[str]:
    """Tags typed on one line, separated by spaces or commas; ValueError (one line) for a bad one."""
    from engine.store.queries import checked_labels

    return checked_labels(t for t in re.split(r"[\s,]+", text) if t)


def parse_tag_edits(text: str) -> tuple[list[str], list[str]]:
    """(tags to add, tags to remove) from one line such as "baseline -draft": a leading "-" removes a tag."""
    words = [t for t in re.split(r"[\s,]+", text) if t]
    add = parse_tags(" ".join(w for w in words if not w.startswith("-")))
    remove = parse_tags(" ".join(w[1:] for w in words if w.startswith("-") and len(w) > 1))
    return add, remove


def set_run_tags(store: "RunStore", run_id: int, tags: Iterable[str]) -> None:
    """Replace the run's tags with `tags`."""
    store.set_labels(run_id, tags)


def tag_runs(store: "RunStore", run_ids: Iterable[int], add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
    """Add `add` to and remove `remove` from each run's tags (checked before any run is changed)."""
    from engine.store.queries import checked_labels

    added, removed = checked_labels(add), checked_labels(remove)
    for run_id in run_ids:
        if added:
            store.add_labels(run_id, added)
        if removed:
            store.remove_labels(run_id, removed)


def set_run_note(store: "RunStore", run_id: int, note: str | None) -> None:
    """The run's note; None or blank text removes it."""
    store.set_note(run_id, note)


def delete_runs(store: "RunStore", run_ids: Iterable[int]) -> None:
    """Soft-delete: hidden from listings, every row kept (restore_runs brings them back)."""
    for run_id in run_ids:
        store.soft_delete(run_id)


def restore_runs(store: "RunStore", run_ids: Iterable[int]) -> None:
    for run_id in run_ids:
        store.restore(run_id)


def load_trained(
    store: "RunStore", run_id: int, cwd: Path | None = None, device: str = "cpu", workspace: str | Path | None = None
) -> "TrainedRun":
    """The run's best weights (verified by hash), config and dataset, its caches read in the caller's
    `workspace` (None: `cwd`). Raises RunNotReadyError when it has no checkpoint (the message says what can be
    done)."""
    from engine.trained import load_trained_run

    return load_trained_run(store, run_id, cwd=cwd, device=device, workspace=workspace)


@dataclass
class UserRecommendations:
    run_id: int
    user: int  # index in the dataset
    recommendations: list  # engine.evaluation.recommend.Recommendation, best first
    history_length: int
    note: str | None  # the run is not FINISHED: which weights these are


def user_index(dataset, raw_user: str) -> int:
    if raw_user not in dataset.user_ids:
        raise NotFoundError(f"user '{raw_user}' is not in dataset '{dataset.name}' (after preprocessing)")
    return dataset.user_ids.index(raw_user)


def recommend_for(
    trained: "TrainedRun", raw_user: str, k: int = 10, history: str = "all", exclude_history: bool = True
) -> UserRecommendations:
    """Top-k of a trained run for a user after `history` ("all": what comes next after everything the user
    did; "test": the list the test split ranks), best first."""
    from engine.evaluation.recommend import recommend, user_history

    dataset = trained.dataset
    user = user_index(dataset, raw_user)
    recs = recommend(
        trained.model,
        dataset,
        user,
        k=k,
        exclude_history=exclude_history,
        history=history,
        max_len=trained.config.model.max_len,
    )
    return UserRecommendations(trained.run_id, user, recs, len(user_history(dataset, user, history)), trained.note)


def run_item_neighbours(trained: "TrainedRun", item: int, k: int = 10) -> list[tuple[int, float]]:
    """The `k` items nearest to `item` by cosine in the run's own item table (what its model scores with)."""
    import torch

    with torch.no_grad():
        table = trained.model.item_table().float().cpu().numpy()
    from engine.services.items import nearest

    return nearest(table, item, k)


# -- runs side by side (the workbench's Compare screen; with one run, that run's detail) -----------------------

# Params a run records about what it did rather than how it was set up: counts, timings and cache hits that
# engine/pipeline.py adds to the params from engine/knowledge.py (extraction, answer quality), the embedding
# cache's EmbedStats, the reductions and the item representation. Two runs of one configuration differ in
# them, so they belong with the run's outputs, not in its configuration diff. fnmatch patterns, one list.
RUN_OUTPUT_PARAMS = (
    "model.parameters",
    "knowledge.extracted",
    "knowledge.extracted_from_cache",
    "knowledge.extraction_failed",
    "knowledge.extraction_items_per_second",
    "knowledge.quality.*",
    "knowledge.embed_texts",
    "knowledge.embed_unique",
    "knowledge.embed_cached",
    "knowledge.embed_encoded",
    "knowledge.embed_seconds",
    "knowledge.semantic_zero_rows",
    "knowledge.reduction_seconds",
    "knowledge.explained_variance",
    "knowledge.pca_components",
    "knowledge.reduction_notes",
    "knowledge.semantic_scale",
    "knowledge.trainable_params",
    "knowledge.frozen_values",
    "knowledge.adapter_params",
)
DURATION_OUTPUT = "run.duration_seconds"
BEST_EPOCH_OUTPUT = "run.best_epoch"


def is_output_param(key: str) -> bool:
    """Whether the param `key` is something the run measured or counted (RUN_OUTPUT_PARAMS), not a setting."""
    from fnmatch import fnmatchcase

    return any(fnmatchcase(key, pattern) for pattern in RUN_OUTPUT_PARAMS)


@dataclass(frozen=True)
class RunsSideBySide:
    """Runs read together for comparing; every tuple is aligned with `run_ids` (None where a run lacks the key)."""

    token: int  # the store's last_change() before anything else was read: a later token means reload
    runs: tuple  # engine.store.RunDetail, in the order asked
    settings: dict[str, tuple[str | None, ...]]  # the configuration params
    differing_settings: dict[str, tuple[str | None, ...]]  # the subset whose values are not all equal
    outputs: dict[str, tuple[object | None, ...]]  # output params, final info/ metrics, duration, best epoch
    metrics: dict[str, tuple[float | None, ...]]  # final valid/ and test/ metrics
    curves: dict[str, dict[int, list[float]]]  # every per-epoch series and EPOCH_SECONDS: key -> run id -> values

    @property
    def run_ids(self) -> tuple[int, ...]:
        return tuple(run.id for run in self.runs)

    @property
    def annotations(self) -> dict[str, tuple[str, ...]]:
        """The researcher's "tags" (space-joined) and "note" per run, each key only when some run has one: the
        note often says why a run was made, and a comparison without it loses the question it answers."""
        summaries = [run.summary for run in self.runs]
        rows: dict[str, tuple[str, ...]] = {}
        if any(s.labels for s in summaries):
            rows["tags"] = tuple(" ".join(s.labels) for s in summaries)
        if any(s.note for s in summaries):
            rows["note"] = tuple(s.note or "" for s in summaries)
        return rows


def runs_side_by_side(store: "RunStore", run_ids: list[int], curves: bool = True) -> RunsSideBySide:
    """The runs' configuration apart from what they recorded, their final metrics and every logged curve
    (`curves=False`: none, and no per-epoch rows read, for a caller that shows only the final figures).
    Raises RunNotFoundError for an unknown id."""
    token = store.last_change()
    comparison = store.compare_runs(run_ids)
    ids = comparison.run_ids
    series = store.metric_series(ids) if curves else {}
    finals = store.final_metrics(ids)
    settings = {k: v for k, v in comparison.params.items() if not is_output_param(k)}
    outputs: dict[str, tuple[object | None, ...]] = {
        k: tuple(_number_or_text(value) for value in v) for k, v in comparison.params.items() if is_output_param(k)
    }
    for key in sorted({k for f in finals.values() for k in f if not k.startswith(("valid/", "test/"))}):
        outputs[key] = tuple(finals.get(i, {}).get(key) for i in ids)
    outputs[DURATION_OUTPUT] = tuple(run.summary.duration_seconds for run in comparison.runs)
    best = tuple(run.tags.get("best_epoch") for run in comparison.runs)
    if any(b is not None for b in best):
        outputs[BEST_EPOCH_OUTPUT] = tuple(None if b is None else int(b) for b in best)
    per_epoch: dict[str, dict[int, list[float]]] = {}
    for key in sorted({k for s in series.values() for k in s}):
        per_epoch[key] = {i: [p.value for p in series.get(i, {}).get(key, [])] for i in ids}
    if curves:
        per_epoch[EPOCH_SECONDS] = {run.id: epoch_seconds(run, series.get(run.id, {})) for run in comparison.runs}
    return RunsSideBySide(
        token=token,
        runs=comparison.runs,
        settings=settings,
        differing_settings={k: v for k, v in settings.items() if len(set(v)) > 1},
        outputs=outputs,
        metrics=comparison.metrics,
        curves=per_epoch,
    )


def _number_or_text(value: str | None) -> object:
    """A param's text as the number it records (params are stored as text; numbers as JSON), else the text."""
    import json

    if value is None:
        return None
    try:
        number = json.loads(value)
    except ValueError:
        return value
    return number if isinstance(number, (int, float)) and not isinstance(number, bool) else value


def epoch_seconds(run, series: dict) -> list[float]:
    """Each epoch's seconds (`series`: key -> MetricPoints): the trainer's own figure where the run recorded it;
    for runs recorded before that, from one epoch's record to the next, the first from the run's start (so a
    resumed run's first epoch after the resume also counts the time the run stood still)."""
    recorded = series.get(EPOCH_SECONDS)
    if recorded:
        return [point.value for point in recorded]
    import math

    stamps: dict[int, float] = {}
    for points in series.values():
        for point in points:
            at = point.timestamp.timestamp()
            stamps[point.step] = min(stamps.get(point.step, at), at)
    out, previous = [], run.summary.started_at.timestamp()
    for step in sorted(stamps):
        seconds = stamps[step] - previous
        out.append(seconds if seconds >= 0 else math.nan)
        previous = stamps[step]
    return out
