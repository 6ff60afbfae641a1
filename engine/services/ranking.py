"""Ranking analysis use cases: where a user's held-out item ranks among all items in each of several runs, and
how those ranks change between two runs over every user (engine.evaluation.rank_changes), split by head / tail
item and by history length: where knowledge injection helps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from engine.services.progress import Progress, ProgressSink, ignore_progress

if TYPE_CHECKING:
    from engine.evaluation.rank_changes import RankComparison, UserRanks
    from engine.store import RunStore
    from engine.trained import TrainedRun


@dataclass(frozen=True)
class HeldOutRank:
    run_id: int
    user: int  # index in the run's dataset
    item: int  # the held-out (test) item
    item_id: str
    title: str
    rank: int  # 1-based, among all items, the user's history excluded as the run's evaluation excludes it
    num_items: int
    is_head: bool  # among the 20% most frequent training items
    history_length: int
    note: str | None  # the run is not FINISHED: which weights these are


def _device(trained: "TrainedRun"):
    try:
        return next(trained.model.parameters()).device
    except StopIteration:
        return "cpu"


def run_ranks(trained: "TrainedRun", users: Sequence[int] | None = None) -> "UserRanks":
    """Every user's (or `users'`) full rank of the held-out test item in a trained run."""
    from engine.evaluation.rank_changes import full_ranks

    cfg = trained.config
    return full_ranks(trained.model, trained.dataset, cfg.eval, cfg.model.max_len, users, _device(trained))


def held_out_rank(trained: "TrainedRun", raw_user: str) -> HeldOutRank:
    """The user's held-out item and its full rank in the run; NotFoundError for a user not in its data."""
    from engine.services.runs import user_index

    dataset = trained.dataset
    ranks = run_ranks(trained, [user_index(dataset, raw_user)])
    item = int(ranks.targets[0])
    return HeldOutRank(
        trained.run_id,
        int(ranks.users[0]),
        item,
        dataset.item_ids[item],
        dataset.title(item),
        int(ranks.ranks[0]),
        dataset.num_items,
        bool(ranks.target_is_head[0]),
        int(ranks.history_lengths[0]),
        trained.note,
    )


def compare_runs(a: "TrainedRun", b: "TrainedRun") -> "RankComparison":
    """The distribution of rank changes from run `a` to run `b` (positive: `b` ranks the held-out item higher)."""
    from engine.data.errors import DataError
    from engine.evaluation.rank_changes import compare_ranks

    if a.dataset.fingerprint != b.dataset.fingerprint:
        raise DataError(
            f"runs {a.run_id} and {b.run_id} were trained on different data "
            f"({a.dataset.name} {a.dataset.fingerprint[:12]}, {b.dataset.name} {b.dataset.fingerprint[:12]}): "
            "their users' ranks cannot be compared"
        )
    return compare_ranks(run_ranks(a), run_ranks(b), a.run_id, b.run_id)


def load_runs(
    store: "RunStore",
    run_ids: Sequence[int],
    cwd: Path | None = None,
    workspace: str | Path | None = None,
    device: str = "cpu",
    on_progress: ProgressSink = ignore_progress,
    loaded: dict[int, "TrainedRun"] | None = None,
) -> list["TrainedRun"]:
    """The trained runs, reporting each load as it starts; `loaded` (a caller's cache, filled here) skips the
    runs already in it."""
    from engine.services.runs import load_trained

    loaded = {} if loaded is None else loaded
    out = []
    start = time.perf_counter()
    done = 0  # runs actually loaded (the pace excludes the cached ones)
    for rid in run_ids:
        if rid not in loaded:
            on_progress(Progress(f"loading run {rid}'s model", done, len(run_ids), time.perf_counter() - start, "runs"))
            loaded[rid] = load_trained(store, rid, cwd=cwd, device=device, workspace=workspace)
            done += 1
        out.append(loaded[rid])
    return out


def compare_run_ids(
    store: "RunStore",
    run_a: int,
    run_b: int,
    cwd: Path | None = None,
    workspace: str | Path | None = None,
    on_progress: ProgressSink = ignore_progress,
    loaded: dict[int, "TrainedRun"] | None = None,
) -> "RankComparison":
    a, b = load_runs(store, [run_a, run_b], cwd=cwd, workspace=workspace, on_progress=on_progress, loaded=loaded)
    on_progress(Progress("ranking every user's held-out item", 0, 2, 0.0, "runs"))
    return compare_runs(a, b)


def unknown_user(store: "RunStore", run_ids: Sequence[int], dataset, raw_user: str) -> str | None:
    """A one-line answer, without loading any model, when `raw_user` is not in `dataset` and every run was
    trained on that very dataset (same fingerprint); None when the user is there or the runs' data differ (then
    loading the run says). A run id not in the store raises RunNotFoundError at once too."""
    from engine.services.runs import user_index
    from engine.services.errors import NotFoundError

    fingerprints = {store.get_run(rid).dataset_fingerprint for rid in run_ids}
    if fingerprints != {dataset.fingerprint}:
        return None
    try:
        user_index(dataset, raw_user)
    except NotFoundError as exc:
        return str(exc)
    return None
