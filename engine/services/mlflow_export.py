"""Runs into an MLflow tracking store, through MLflow's own client, so they open in the MLflow UI beside other
experiments: `kirec runs export --mlflow DIR`.

DIR holds an SQLite tracking store (`DIR/mlflow.db`, the backend MLflow 3 recommends and defaults to; the file
store is legacy) and its artifacts (`DIR/artifacts`); open it with `mlflow ui --backend-store-uri
sqlite:///DIR/mlflow.db`. Each kirec run becomes one MLflow run of the experiment "kirec": its params, every
per-epoch metric with its step and time, the final metrics, its tags, its config (`kirec_config.json`) and its
best checkpoint (`checkpoint/`) as artifacts.

Idempotent: each MLflow run carries the tags `kirec.run_id` and `kirec.database`. Exporting again skips a run whose
copy is current (same status and end, `kirec.exported_state`) and replaces one that changed since (a run exported
while RUNNING that has finished): MLflow params cannot be rewritten and re-logged metrics would double the curves,
so the old copy is deleted (MLflow's soft delete) and the run is written anew. Either way the experiment shows one
run per kirec run.

MLflow forbids `@` in metric names: `valid/NDCG@10` is written `valid/NDCG_at_10` (any other character MLflow
refuses becomes `_`). A final (best-epoch) value whose key also has a per-epoch curve is written under `best/`, so
it does not add a point to that curve.

mlflow is an optional extra (`pip install kirec[mlflow]`) and is imported only here, on first use.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from engine.store import RunStore

EXPERIMENT = "kirec"
RUN_ID_TAG = "kirec.run_id"
DATABASE_TAG = "kirec.database"
STATE_TAG = "kirec.exported_state"
INSTALL_HINT = "MLflow export needs the mlflow extra: install kirec[mlflow] (pip install 'kirec[mlflow]')"
CHECKPOINT_KIND = "checkpoint"
# kirec run status -> MLflow RunStatus name
STATUSES = {"FINISHED": "FINISHED", "FAILED": "FAILED", "INTERRUPTED": "KILLED", "RUNNING": "RUNNING"}
# MLflow's batch limits (mlflow.utils.validation): 1000 entities in all, of which at most 100 params and tags
METRICS_PER_BATCH, PARAMS_TAGS_PER_BATCH = 1000, 100
MAX_TAG_VALUE = 5000  # MLflow truncates longer tag values (error messages can be long)


class MlflowMissingError(RuntimeError):
    """mlflow is not installed; the message says which extra to install."""


@dataclass
class MlflowExportResult:
    tracking_uri: str
    experiment_id: str
    written: list[int] = field(default_factory=list)  # kirec run ids exported for the first time
    replaced: list[int] = field(default_factory=list)  # changed since their last export: written anew
    unchanged: list[int] = field(default_factory=list)  # their copy was current: skipped
    seconds: float = 0.0


def tracking_uri(folder: str | Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


def mlflow_key(key: str) -> str:
    """A kirec metric or param key as MLflow accepts it (letters, digits, `_ - . / :` and spaces)."""
    return re.sub(r"[^\w\-./: ]", "_", key.replace("@", "_at_"))


def export_to_mlflow(
    store: "RunStore",
    run_ids: list[int] | None,
    folder: str | Path,
    experiment: str = EXPERIMENT,
    on_progress: Callable[[int, int], None] | None = None,
) -> MlflowExportResult:
    """Write the runs (None: every run not deleted) into the MLflow store in `folder` (created when missing).
    Raises MlflowMissingError without mlflow, RunNotFoundError for an id the store does not hold."""
    client_module = _import_mlflow()
    started = time.perf_counter()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(folder)
    client = client_module.MlflowClient(tracking_uri=uri)
    experiment_id = _experiment(client, experiment, folder / "artifacts")
    database = str(Path(store.path).resolve())
    ids = [r.id for r in sorted(store.list_runs(), key=lambda r: r.id)] if run_ids is None else list(run_ids)
    details = [store.get_run(i) for i in ids]  # every id checked before anything is written
    existing = _exported(client, experiment_id, database)
    result = MlflowExportResult(uri, experiment_id)
    for done, detail in enumerate(details, start=1):
        state = _state(detail)
        previous = existing.get(detail.id)
        if previous is not None and previous.data.tags.get(STATE_TAG) == state:
            result.unchanged.append(detail.id)
        else:
            if previous is not None:
                client.delete_run(previous.info.run_id)
            _write_run(client, experiment_id, store, detail, database, state)
            (result.replaced if previous is not None else result.written).append(detail.id)
        if on_progress is not None:
            on_progress(done, len(details))
    result.seconds = time.perf_counter() - started
    return result


def _import_mlflow() -> Any:
    try:
        from mlflow import tracking
    except ImportError:
        raise MlflowMissingError(INSTALL_HINT) from None
    return tracking


def _experiment(client: Any, name: str, artifacts: Path) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    # The artifact root is given: an SQLite store's default is ./mlruns of whatever folder the export ran in.
    return client.create_experiment(name, artifact_location=artifacts.as_uri())


def _exported(client: Any, experiment_id: str, database: str) -> dict[int, Any]:
    """The active MLflow runs already exported from `database`, by kirec run id."""
    quoted = database.replace("'", "\\'")
    found: dict[int, Any] = {}
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=f"tags.`{DATABASE_TAG}` = '{quoted}'", max_results=1000, page_token=token
        )
        for run in page:
            found[int(run.data.tags[RUN_ID_TAG])] = run
        token = page.token
        if not token:
            return found


def _state(detail: Any) -> str:
    """What a re-export compares: a run's copy is current while its status and end have not moved."""
    ended = detail.summary.ended_at.isoformat() if detail.summary.ended_at else "running"
    return f"{detail.summary.status}@{ended}"


def _millis(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def _write_run(client: Any, experiment_id: str, store: Any, detail: Any, database: str, state: str) -> None:
    from mlflow.entities import Metric, Param, RunTag

    summary = detail.summary
    tags = {
        RUN_ID_TAG: str(detail.id),
        DATABASE_TAG: database,
        STATE_TAG: state,
        "kirec.status": str(summary.status),
        "kirec.dataset": summary.dataset,
        "kirec.dataset_fingerprint": detail.dataset_fingerprint,
        "kirec.method": summary.method,
        "kirec.backbone": summary.backbone,
        "kirec.device": summary.device,
        "kirec.code_version": detail.code_version,
        **({"kirec.error": detail.error[:MAX_TAG_VALUE]} if detail.error else {}),
        **{mlflow_key(k): str(v)[:MAX_TAG_VALUE] for k, v in detail.tags.items()},
    }
    run = client.create_run(experiment_id, start_time=_millis(summary.started_at), run_name=summary.name)
    run_id = run.info.run_id
    curves = store.metric_series([detail.id]).get(detail.id, {})  # every per-epoch series, in one read
    metrics = [
        Metric(mlflow_key(key), point.value, _millis(point.timestamp), point.step)
        for key, points in sorted(curves.items())
        for point in points
    ]
    final_time = _millis(summary.ended_at or summary.started_at)
    for key, value in {**detail.valid_metrics, **detail.test_metrics}.items():
        name = f"best/{key}" if key in curves else key
        metrics.append(Metric(mlflow_key(name), value, final_time, 0))
    params = [Param(mlflow_key(k), str(v)) for k, v in sorted(detail.params.items())]
    tag_list = [RunTag(k, v) for k, v in tags.items()]
    for batch in _batches(metrics, params, tag_list):
        client.log_batch(run_id, **batch)
    _log_artifacts(client, run_id, detail)
    if summary.status != "RUNNING":
        client.set_terminated(run_id, STATUSES.get(str(summary.status), "FINISHED"), end_time=final_time)


def _log_artifacts(client: Any, run_id: str, detail: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="kirec-mlflow-") as scratch:
        config = Path(scratch) / "kirec_config.json"
        config.write_text(json.dumps(detail.config, indent=2, sort_keys=True, default=str) + "\n")
        client.log_artifact(run_id, str(config))
    checkpoints = [a.path for a in detail.artifacts if a.kind == CHECKPOINT_KIND and Path(a.path).is_file()]
    if checkpoints:
        client.log_artifact(run_id, checkpoints[-1], artifact_path="checkpoint")


def _batches(metrics: list[Any], params: list[Any], tags: list[Any]) -> Iterator[dict[str, list[Any]]]:
    """log_batch arguments within MLflow's limits, as few calls as they allow (a typical run is one call)."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        batch_params, params = params[:PARAMS_TAGS_PER_BATCH], params[PARAMS_TAGS_PER_BATCH:]
        room = PARAMS_TAGS_PER_BATCH - len(batch_params)  # params and tags share one limit
        batch_tags, tags = tags[:room], tags[room:]
        room = METRICS_PER_BATCH - len(batch_params) - len(batch_tags)  # and every entity the total one
        batch_metrics, metrics = metrics[:room], metrics[room:]
        yield {"metrics": batch_metrics, "params": batch_params, "tags": batch_tags}
