"""Runs use cases: the runs store for reading or writing, exporting runs, a trained run reloaded, what it
recommends to a user, and an item's neighbours in a run's own item table."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from engine.services.errors import NotFoundError

if TYPE_CHECKING:
    from engine.store import RunStore
    from engine.trained import TrainedRun


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
    store: "RunStore", run_ids: list[int] | None, fmt: str, target: str | Path | None = None, force: bool = False
) -> str:
    """The runs as CSV or JSON text; written to `target` (through a temporary file and a rename) when given.
    An existing target raises ExportTargetExistsError unless `force`."""
    from engine.store.export_file import write_export

    if target is not None:
        check_export_target(target, store.path, force=force)  # before the query runs
    text = store.export_runs(run_ids, fmt)
    if target is not None:
        write_export(target, text, store.path, force=force)
    return text


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
