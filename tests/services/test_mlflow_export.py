"""`kirec runs export --mlflow DIR`: runs written through MLflow's client and read back with it (params, per-epoch
metric history, tags, artifacts), a re-export that adds no duplicates, and one clear line without mlflow."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from tests.cli_support import invoke
from tests.tui_support import BASE_TIME, RUN_SPECS

from engine.store import open_store

needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed (pip install 'kirec[mlflow]')"
)


def client_for(folder):
    from mlflow.tracking import MlflowClient

    from engine.services.mlflow_export import tracking_uri

    return MlflowClient(tracking_uri=tracking_uri(folder))


def exported_runs(folder) -> dict[int, object]:
    """The active MLflow runs of the kirec experiment, by kirec run id."""
    client = client_for(folder)
    experiment = client.get_experiment_by_name("kirec")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_id: dict[int, object] = {}
    for run in runs:
        kirec_id = int(run.data.tags["kirec.run_id"])
        assert kirec_id not in by_id, f"kirec run {kirec_id} exported twice"
        by_id[kirec_id] = run
    return by_id


@pytest.fixture
def store_with_checkpoint(runs_db, tmp_path):
    """runs_db, with a checkpoint file and a tag on its first run."""
    db, ids = runs_db
    checkpoint = tmp_path / "checkpoints" / "run-1-e4.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    with open_store(db) as store:
        store.set_artifact(ids[0], "checkpoint", checkpoint, None)
        store.set_tags(ids[0], {"note": "baseline to beat", "best_epoch": "4"})
    return db, ids


@needs_mlflow
def test_runs_read_back_through_mlflows_client(store_with_checkpoint, tmp_path):
    db, ids = store_with_checkpoint
    out = tmp_path / "mlflow"
    result = invoke("runs", "export", str(ids[0]), str(ids[2]), "--db", str(db), "--mlflow", str(out), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 runs written" in result.output and "mlflow ui --backend-store-uri sqlite:///" in result.output
    runs = exported_runs(out)
    assert set(runs) == {ids[0], ids[2]}

    first, spec = runs[ids[0]], RUN_SPECS[0]
    name, dataset, method, backbone, _fusion, status, curve, hr, ndcg = spec
    assert first.info.run_name == name and first.info.status == status
    assert first.info.start_time == int(BASE_TIME * 1000)
    assert first.data.params["model.backbone"] == backbone and first.data.params["knowledge.method"] == method
    assert first.data.params["train.lr"] == "0.001"
    tags = first.data.tags
    assert tags["note"] == "baseline to beat" and tags["kirec.dataset"] == dataset
    assert tags["kirec.database"] == str(db.resolve())
    client = client_for(out)
    history = client.get_metric_history(first.info.run_id, "valid/NDCG_at_10")
    assert [(m.step, m.value) for m in history] == list(enumerate(curve, start=1))
    # one minute apart, as the store's clock logged them
    assert [m.timestamp for m in history] == [int((BASE_TIME + 60 * e) * 1000) for e in range(1, len(curve) + 1)]
    assert len(client.get_metric_history(first.info.run_id, "train/loss")) == len(curve)
    # final values: the test metrics as they are, the best validation value beside its curve, not on it
    assert first.data.metrics["test/HR_at_10"] == pytest.approx(hr)
    assert first.data.metrics["test/NDCG_at_10"] == pytest.approx(ndcg)
    assert first.data.metrics["best/valid/NDCG_at_10"] == pytest.approx(max(curve))
    artifacts = {a.path for a in client.list_artifacts(first.info.run_id)}
    assert artifacts == {"checkpoint", "kirec_config.json"}
    assert [a.path for a in client.list_artifacts(first.info.run_id, "checkpoint")] == ["checkpoint/run-1-e4.pt"]
    local = client.download_artifacts(first.info.run_id, "checkpoint/run-1-e4.pt", str(tmp_path / "back"))
    assert open(local, "rb").read() == b"weights"
    third = runs[ids[2]]
    assert third.info.run_name == RUN_SPECS[2][0] and third.data.params["knowledge.fusion"] == "gate"
    assert {a.path for a in client.list_artifacts(third.info.run_id)} == {"kirec_config.json"}  # no checkpoint


@needs_mlflow
def test_exporting_again_adds_no_duplicates_and_replaces_a_run_that_changed(runs_db, tmp_path, fixed_clock):
    from engine.services.mlflow_export import export_to_mlflow

    db, ids = runs_db
    out = tmp_path / "mlflow"
    with open_store(db) as store:
        running = store.create_run(
            name="still-training",
            config={"name": "still-training"},
            dataset="ml-latest-small",
            dataset_fingerprint="f" * 16,
            backbone="sasrec",
            method="id",
            device="cpu",
            params={"train.lr": "0.001"},
            code_version="test",
        )
        store.log_metrics(running, {"valid/NDCG@10": 0.01}, step=1)
        first = export_to_mlflow(store, None, out)
        assert sorted(first.written) == sorted([*ids, running]) and not first.replaced
        assert exported_runs(out)[running].info.status == "RUNNING"

        again = export_to_mlflow(store, None, out)
        assert again.written == [] and again.replaced == [] and sorted(again.unchanged) == sorted([*ids, running])
        assert set(exported_runs(out)) == {*ids, running}

        # It finished since: its copy is written anew (params cannot change in MLflow), still one run per run.
        fixed_clock.now += 60
        store.log_metrics(running, {"valid/NDCG@10": 0.02}, step=2)
        store.finish_run(running, "FINISHED")
        later = export_to_mlflow(store, [running, ids[0]], out)
        assert later.replaced == [running] and later.unchanged == [ids[0]]
    runs = exported_runs(out)
    assert set(runs) == {*ids, running} and runs[running].info.status == "FINISHED"
    history = client_for(out).get_metric_history(runs[running].info.run_id, "valid/NDCG_at_10")
    assert [m.value for m in history] == [0.01, 0.02]


def test_without_mlflow_the_cli_says_which_extra_to_install(runs_db, tmp_path, monkeypatch):
    db, _ = runs_db
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    result = invoke("runs", "export", "--db", str(db), "--mlflow", str(tmp_path / "mlflow"), cwd=tmp_path)
    assert result.exit_code == 2
    assert "install kirec[mlflow]" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mlflow").exists()


def test_mlflow_and_output_together_is_a_usage_error(runs_db, tmp_path):
    db, _ = runs_db
    result = invoke(
        "runs", "export", "--db", str(db), "--mlflow", str(tmp_path / "m"), "-o", str(tmp_path / "x"), cwd=tmp_path
    )
    assert result.exit_code == 2 and "not both" in result.output


def test_metric_names_become_names_mlflow_accepts():
    from engine.services.mlflow_export import mlflow_key

    assert mlflow_key("valid/NDCG@10") == "valid/NDCG_at_10"
    assert mlflow_key("test/HR@10/head") == "test/HR_at_10/head"
    assert mlflow_key("info/epoch seconds") == "info/epoch seconds"
    assert mlflow_key("weird[key]") == "weird_key_"


def test_batches_keep_within_mlflows_limits_and_lose_nothing():
    from engine.services.mlflow_export import _batches

    batches = list(_batches(list(range(2500)), list(range(130)), list(range(90))))
    assert all(len(b["params"]) + len(b["tags"]) <= 100 for b in batches)
    assert all(len(b["metrics"]) + len(b["params"]) + len(b["tags"]) <= 1000 for b in batches)
    assert sum((b["metrics"] for b in batches), []) == list(range(2500))
    assert sum((b["params"] for b in batches), []) == list(range(130))
    assert sum((b["tags"] for b in batches), []) == list(range(90))


@needs_mlflow
def test_the_mlflow_export_takes_the_listing_filters(runs_db, tmp_path):
    db, ids = runs_db
    out = tmp_path / "mlflow"
    result = invoke("runs", "export", "--db", str(db), "--mlflow", str(out), "--dataset", "amazon-beauty", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    beauty = [run_id for run_id, spec in zip(ids, RUN_SPECS) if spec[1] == "amazon-beauty"]
    assert beauty and set(exported_runs(out)) == set(beauty)


def test_mlflow_with_an_output_file_is_refused_before_anything_is_written(runs_db, tmp_path):
    db, _ = runs_db
    result = invoke(
        "runs",
        "export",
        "--db",
        str(db),
        "--mlflow",
        str(tmp_path / "mlflow"),
        "-o",
        str(tmp_path / "runs.csv"),
        cwd=tmp_path,
    )
    assert result.exit_code == 2 and "give it or --output, not both" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "runs.csv").exists()
