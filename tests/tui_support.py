"""Shared builders for the TUI tests: a small runs database with fixed timestamps (stable snapshots), and a wait
for the app's workers. The fixtures over them (`fixed_clock`, `runs_db`, `anyio_backend`) are in conftest.py."""

from __future__ import annotations

import time
from pathlib import Path

from textual.worker import WorkerCancelled

from engine.store import open_store

BASE_TIME = 1767261600.0  # 2026-01-01 10:00:00 UTC

# (name, dataset, method, backbone, fusion, final status, per-epoch valid NDCG@10, test HR@10, test NDCG@10)
RUN_SPECS = (
    ("id-sasrec-ml", "ml-latest-small", "id", "sasrec", None, "FINISHED", [0.02, 0.035, 0.041, 0.044], 0.081, 0.0441),
    ("id-gru-ml", "ml-latest-small", "id", "gru4rec", None, "FINISHED", [0.015, 0.028, 0.033], 0.066, 0.0352),
    (
        "kirec-gate-beauty",
        "amazon-beauty",
        "kirec",
        "sasrec",
        "gate",
        "FINISHED",
        [0.021, 0.03, 0.038, 0.042, 0.043],
        0.079,
        0.0428,
    ),
    ("bert-fail", "amazon-beauty", "id", "bert4rec", None, "FAILED", [0.01], None, None),
    ("kirec-add-ml", "ml-latest-small", "kirec", "sasrec", "add", "INTERRUPTED", [0.018, 0.025], None, None),
)


class FixedClock:
    """time.time() for the store: starts at BASE_TIME and moves only when told."""

    def __init__(self, start: float = BASE_TIME) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


def build_runs_db(path: Path, clock: FixedClock, specs=RUN_SPECS) -> list[int]:
    """Write `specs` into a fresh runs.db through the real store; returns the run ids in spec order."""
    ids = []
    with open_store(path) as store:
        for index, (name, dataset, method, backbone, fusion, status, curve, hr, ndcg) in enumerate(specs):
            clock.now = BASE_TIME + 3600 * index
            params = {
                "model.backbone": backbone,
                "knowledge.method": method,
                "train.lr": 0.001 * (1 + index % 2),
                "train.epochs": len(curve),
                "train.seed": 42,
            }
            if fusion:
                params["knowledge.fusion"] = fusion
                params["knowledge.prompt_hash"] = f"abc{index}def0123"
            run_id = store.create_run(
                name=name,
                config={"name": name},
                dataset=dataset,
                dataset_fingerprint="f" * 16,
                backbone=backbone,
                method=method,
                device="cpu",
                params=params,
                code_version="test",
            )
            for epoch, value in enumerate(curve, start=1):
                clock.now += 60
                store.log_metrics(
                    run_id,
                    {"valid/NDCG@10": value, "valid/HR@10": 2 * value, "train/loss": 8.0 / (epoch + index)},
                    step=epoch,
                )
            if hr is not None:
                store.log_metrics(
                    run_id, {"test/HR@10": hr, "test/NDCG@10": ndcg, "valid/NDCG@10": max(curve)}, step=None
                )
            clock.now += 30
            store.finish_run(run_id, status, error="boom" if status == "FAILED" else None)
            ids.append(run_id)
    return ids


async def wait_for_workers(app) -> None:
    """Wait until no worker runs. Screens start loads in exclusive groups, so a load superseded by a newer one is
    cancelled by design; waiting must not treat that as a failure."""
    while pending := [w for w in app.workers if not w.is_finished]:
        try:
            await app.workers.wait_for_complete(pending)
        except WorkerCancelled:
            pass


# A bound on waiting, not a synchronisation: under two CPU hogs on 2 cores a screen's reload took over 10 s.
WAIT_SECONDS = 60.0


async def wait_until(pilot, condition, timeout: float = WAIT_SECONDS, settle_workers: bool = True) -> None:
    """Wait on the app's own state (a timer's poll, a worker's message) until `condition()` holds, failing after
    `timeout`. `settle_workers=False` while a long worker (a training run) must keep running."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)
        if settle_workers:
            await wait_for_workers(pilot.app)
