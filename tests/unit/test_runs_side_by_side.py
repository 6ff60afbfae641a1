"""engine.services.runs.runs_side_by_side: configuration apart from outputs, every logged curve, epoch times."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.config import RunConfig
from engine.dotted import flatten_dotted
from engine.events import EpochEnd, RunFinished
from engine.extraction.quality import FieldQuality, QualityReport
from engine.semantic.embedding_cache import EmbedStats
from engine.services.runs import (
    BEST_EPOCH_OUTPUT,
    DURATION_OUTPUT,
    EPOCH_SECONDS,
    is_output_param,
    runs_side_by_side,
)
from engine.store import StoreRecorder, open_store
from engine.store import queries as store_queries


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    from types import SimpleNamespace

    fixed = Clock()
    monkeypatch.setattr(store_queries, "time", SimpleNamespace(time=fixed.time, perf_counter=fixed.time))
    return fixed


def make_run(store, name: str, params: dict) -> int:
    return store.create_run(
        name=name,
        config={"name": name},
        dataset="d",
        dataset_fingerprint="f",
        backbone="sasrec",
        method="kirec",
        device="cpu",
        params=params,
        code_version="test",
    )


def test_every_setting_of_a_config_stays_configuration():
    keys = flatten_dotted(RunConfig().to_dict())
    assert keys and not [k for k in keys if is_output_param(k)]


def test_what_the_run_measures_is_an_output():
    embed = EmbedStats(texts=10, unique=9, cached=4, encoded=5, encode_seconds=1.5).as_info()
    field = FieldQuality("genre", 5, 1, 3, 4, "drama", 2, 0)
    quality = QualityReport("p", items=6, answered=5, failed=1, missing=0, fields=(field,)).as_info()
    measured = [*embed, *quality, "extracted", "extracted_from_cache", "extraction_failed", "trainable_params"]
    assert [k for k in measured if not is_output_param(f"knowledge.{k}")] == []
    assert is_output_param("model.parameters")
    for setting in ("knowledge.prompt_hash", "knowledge.fusion", "knowledge.embed_text", "knowledge.reduction"):
        assert not is_output_param(setting)


def test_side_by_side_splits_params_and_reads_every_curve(tmp_path: Path, clock: Clock):
    with open_store(tmp_path / "runs.db") as store:
        ids = []
        for index, lr in enumerate((0.001, 0.002)):
            clock.now = 1_000_000.0 + 1000 * index
            run_id = make_run(
                store,
                f"r{index}",
                {"train.lr": lr, "knowledge.embed_seconds": 1.5 + index, "knowledge.extracted_from_cache": 7},
            )
            record = StoreRecorder(store, run_id)
            for epoch, seconds in enumerate((30.0, 45.0), start=1):
                clock.now += seconds + 7  # 7 s outside the trainer's own timing (checkpoints, a pause)
                valid = {"NDCG@10": 0.1 * epoch, "MRR@10": 0.05 * epoch, "HR@10/head": 0.2}
                record(EpochEnd(epoch, 1.0 / epoch, valid, seconds - 5, 5.0, True))
            store.log_metrics(run_id, {"info/epochs_run": 2.0}, step=None)
            clock.now += 10
            record(
                RunFinished(
                    run_id, "FINISHED", valid={"NDCG@10": 0.2}, test={"NDCG@10": 0.19, "users": 50.0}, best_epoch=2
                )
            )
            ids.append(run_id)
        view = runs_side_by_side(store, ids)
        assert view.run_ids == tuple(ids)
        assert set(view.differing_settings) == {"train.lr"}
        assert "knowledge.embed_seconds" not in view.settings
        assert view.outputs["knowledge.embed_seconds"] == (1.5, 2.5)  # numbers, not their text
        assert view.outputs["knowledge.extracted_from_cache"] == (7, 7)
        assert view.outputs["info/epochs_run"] == (2.0, 2.0)
        assert view.outputs[DURATION_OUTPUT] == (99.0, 99.0)
        assert view.outputs[BEST_EPOCH_OUTPUT] == (2, 2)
        assert set(view.metrics) == {"valid/NDCG@10", "test/NDCG@10", "test/users"}
        assert set(view.curves) == {"train/loss", "valid/NDCG@10", "valid/MRR@10", "valid/HR@10/head", EPOCH_SECONDS}
        assert view.curves["valid/MRR@10"][ids[1]] == pytest.approx([0.05, 0.1])
        assert view.curves[EPOCH_SECONDS][ids[0]] == [30.0, 45.0]  # the trainer's seconds, not the 37 and 52 between
        assert view.token == store.last_change()

        def no_series(run_ids):
            raise AssertionError("curves=False read the per-epoch rows")

        store.metric_series = no_series
        finals_only = runs_side_by_side(store, ids, curves=False)
        assert finals_only.curves == {}
        assert (finals_only.settings, finals_only.outputs, finals_only.metrics) == (
            view.settings,
            view.outputs,
            view.metrics,
        )


def test_runs_recorded_without_epoch_seconds_get_them_from_their_records_times(tmp_path: Path, clock: Clock):
    with open_store(tmp_path / "runs.db") as store:
        run_id = make_run(store, "old", {})
        for epoch, seconds in enumerate((30.0, 45.0), start=1):
            clock.now += seconds
            store.log_metrics(run_id, {"train/loss": 1.0 / epoch}, step=epoch)  # as the recorder once wrote them
        view = runs_side_by_side(store, [run_id])
    assert view.curves[EPOCH_SECONDS][run_id] == [30.0, 45.0]  # from the start, then record to record


def test_store_reads_every_series_and_final_metric_in_one_call(tmp_path: Path):
    with open_store(tmp_path / "runs.db") as store:
        a, b = make_run(store, "a", {}), make_run(store, "b", {})
        store.log_metrics(a, {"x/one": 1.0, "x/two": math.nan}, step=1)
        store.log_metrics(a, {"x/one": 2.0}, step=2)
        store.log_metrics(a, {"info/train_seconds": 3.0, "test/HR@10": 0.5}, step=None)
        series = store.metric_series([a, b, 999])
        assert list(series) == [a]
        assert [p.value for p in series[a]["x/one"]] == [1.0, 2.0]
        assert math.isnan(series[a]["x/two"][0].value)
        assert store.final_metrics([a, b]) == {a: {"info/train_seconds": 3.0, "test/HR@10": 0.5}}
