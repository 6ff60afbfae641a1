"""SVG snapshots of the Bench screen at 140×40 and 100×30, over a fixed results file whose rows name runs of the
fixed runs.db (tui_support). Update with: pytest tests/tui/test_tui_snapshots_bench.py --snapshot-update"""

from __future__ import annotations

import json

import pytest
from tests.tui.test_tui_snapshots import make_app, settle


def mean_std(mean: float, std: float) -> dict:
    return {"mean": mean, "std": std, "n": 3}


def row(method: str, backbone: str, run_ids: list[int], ndcg: float, hr: float, gain=None, p=None) -> dict:
    return {
        "protocol": "full",
        "protocol_label": "full ranking, history excluded",
        "dataset": "ml-latest-small",
        "backbone": backbone,
        "method": method,
        "baseline": gain is None,
        "seeds": [1, 2, 3][: len(run_ids)],
        "run_ids": run_ids,
        "setting": {},
        "test": {
            "HR@10": mean_std(hr, 0.0041),
            "NDCG@10": mean_std(ndcg, 0.0021),
            "HR@20": mean_std(hr * 1.5, 0.0052),
            "NDCG@20": mean_std(ndcg * 1.2, 0.0023),
        },
        "gain": {} if gain is None else {"HR@10": gain * 0.8, "NDCG@10": gain, "HR@20": gain / 2, "NDCG@20": gain},
        "wilcoxon": None if p is None else {"p_value": p, "statistic": 1.0, "users": 610, "users_differing": 99},
    }


@pytest.fixture
def results(tmp_path, runs_db):
    db, ids = runs_db
    folder = tmp_path / "docs" / "results"
    folder.mkdir(parents=True)
    document = {
        "bench": "demo",
        "command": "kirec bench docs/results/demo.toml",
        "generated_at": "2026-01-01 12:00 UTC",
        "database": "runs.db",
        "baseline": "id",
        "complete": True,
        "budget": "train.epochs = 200",
        "rows": [
            row("id", "sasrec", [ids[0]], 0.0441, 0.081),
            row("kirec", "sasrec", [ids[4]], 0.0498, 0.0902, gain=0.129, p=0.0004),
            row("id", "gru4rec", [ids[1]], 0.0352, 0.066),
        ],
    }
    (folder / "demo.json").write_text(json.dumps(document))
    return db


async def open_bench(pilot) -> None:
    await settle(pilot)
    await pilot.press("5")
    await settle(pilot)


@pytest.mark.parametrize("size", [(140, 40), (100, 30)], ids=["140x40", "100x30"])
def test_bench_screen(snap_compare, tmp_path, results, size):
    assert snap_compare(make_app(tmp_path, results), terminal_size=size, run_before=open_bench)
