"""The first run shows the method against the plain ID model (issue #10): `kirec run` of a knowledge method ends
with the ID baseline's test metrics and the relative gain beside its own, training that baseline when the database
holds none and reusing it when it does; `--json` carries it as `baseline`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.bench.identity import config_identity
from engine.config import KnowledgeConfig, RunConfig
from engine.events import EpochEnd, RunStarted
from engine.services import experiments
from engine.store import open_store
from tests.cli_support import invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = [
    "--hidden-size",
    "16",
    "--max-len",
    "10",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--epochs",
    "2",
    "--set",
    "train.num_threads=1",
]
TINY_ITEMS = 30  # the tiny dataset's items (all pass the 5-core filter)


@pytest.fixture
def table(tmp_path: Path) -> str:
    """A seeded semantic table: the knowledge path runs without the LLM or the encoder."""
    values = np.random.default_rng(0).normal(size=(TINY_ITEMS + 1, 8)).astype(np.float32)
    values[0] = 0.0
    np.save(tmp_path / "table.npy", values)
    return str(tmp_path / "table.npy")


def kirec_run(dataset: Path, db: Path, table: str, *extra: str, cwd: Path):
    return invoke(
        "run",
        "--dataset",
        str(dataset),
        "--db",
        str(db),
        *TINY,
        "--method",
        "kirec",
        "--set",
        f"knowledge.semantic_table={table}",
        *extra,
        cwd=cwd,
    )


def tiny_config(dataset: Path, table: str, folder: Path) -> RunConfig:
    """The service-level twin of kirec_run: KIRec (the default method) over the seeded table."""
    cfg = RunConfig()
    cfg.db = str(folder / "runs.db")
    cfg.data.dataset = str(dataset)
    cfg.model.hidden_size, cfg.model.max_len, cfg.train.batch_size, cfg.train.epochs = 16, 10, 32, 3
    cfg.train.device, cfg.train.num_threads = "cpu", 1
    cfg.knowledge.semantic_table = table
    return cfg


def stored_runs(db: Path) -> list:
    with open_store(db, create=False) as store:
        return [store.get_run(summary.id) for summary in store.list_runs(order_by="id", descending=False)]


def test_a_kirec_run_trains_its_id_baseline_and_reports_it_in_json(tiny_dataset, table, tmp_path):
    db = tmp_path / "runs.db"
    result = kirec_run(tiny_dataset, db, table, "--json", "--name", "first", "--seed", "3", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    baseline = payload["baseline"]
    assert payload["run_id"] == 1 and baseline["run_id"] == 2  # the run first: its id is a plain run's
    assert baseline["status"] == "FINISHED" and baseline["reused"] is False
    assert 0.0 <= baseline["test"]["NDCG@10"] <= baseline["test"]["HR@10"] <= 1.0
    gain = baseline["gain"]["NDCG@10"]
    assert gain == pytest.approx(
        (payload["test"]["NDCG@10"] - baseline["test"]["NDCG@10"]) / baseline["test"]["NDCG@10"]
    )

    run, base = stored_runs(db)
    assert (run.summary.method, base.summary.method) == ("kirec", "id")
    assert base.summary.name == "first baseline" and base.summary.status == "FINISHED"
    # the same data, backbone, model, training (seed 3 too) and evaluation; only the knowledge stage differs
    assert base.dataset_fingerprint == run.dataset_fingerprint
    assert {k: v for k, v in run.config.items() if k not in ("knowledge", "name")} == {
        k: v for k, v in base.config.items() if k not in ("knowledge", "name")
    }
    assert base.config["train"]["seed"] == 3 and base.config["knowledge"] == KnowledgeConfig(method="id").__dict__
    assert base.test_metrics["test/NDCG@10"] == pytest.approx(baseline["test"]["NDCG@10"])


def test_the_baseline_in_the_database_is_reused_and_another_seed_gets_its_own(tiny_dataset, table, tmp_path):
    db = tmp_path / "runs.db"
    first = json.loads(kirec_run(tiny_dataset, db, table, "--json", cwd=tmp_path).stdout)
    # another fusion: an id run ignores it, so the same baseline answers
    second = kirec_run(tiny_dataset, db, table, "--json", "--fusion", "add", cwd=tmp_path)
    assert second.exit_code == 0, second.output
    reused = json.loads(second.stdout)["baseline"]
    assert reused["reused"] is True and reused["run_id"] == first["baseline"]["run_id"]
    assert reused["test"] == pytest.approx(first["baseline"]["test"])
    assert len(stored_runs(db)) == 3  # two KIRec runs, one baseline
    other_seed = json.loads(kirec_run(tiny_dataset, db, table, "--json", "--seed", "5", cwd=tmp_path).stdout)
    assert other_seed["baseline"]["reused"] is False and other_seed["baseline"]["run_id"] == 5
    assert stored_runs(db)[-1].config["train"]["seed"] == 5


def test_the_table_shows_the_baseline_beside_the_run_with_the_gain(tiny_dataset, table, tmp_path):
    result = kirec_run(tiny_dataset, tmp_path / "runs.db", table, cwd=tmp_path)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "id test (run 2)" in text and "gain" in text
    assert "test NDCG@10" in text and "for the plain ID model (run 2, trained now)" in text and "%" in text


def test_no_baseline_for_an_id_run_or_when_turned_off(tiny_dataset, table, tmp_path):
    db = tmp_path / "runs.db"
    plain = invoke(
        "run", "--dataset", str(tiny_dataset), "--db", str(db), *TINY, "--method", "id", "--json", cwd=tmp_path
    )
    assert plain.exit_code == 0, plain.output
    assert "baseline" not in json.loads(plain.stdout)
    off = kirec_run(tiny_dataset, db, table, "--json", "--no-baseline", cwd=tmp_path)
    assert off.exit_code == 0, off.output
    assert "baseline" not in json.loads(off.stdout)
    assert [r.summary.method for r in stored_runs(db)] == ["id", "kirec"]


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--method", "id", "--baseline"], "plain ID model (knowledge.method=id, no side fields) itself"),
        (["--method", "kirec", "--baseline", "--nproc", "2"], "--baseline trains in one process"),
    ],
)
def test_a_baseline_that_cannot_be_made_is_refused_before_anything_is_stored(flags, words, tiny_dataset, tmp_path):
    db = tmp_path / "runs.db"
    result = invoke("run", "--dataset", str(tiny_dataset), "--db", str(db), *TINY, *flags, cwd=tmp_path)
    assert result.exit_code == 2 and words in result.output
    assert len(result.output.strip().splitlines()) == 1 and not db.exists()


def test_a_stop_while_the_baseline_trains_keeps_the_finished_run(tiny_dataset, table, tmp_path):
    cfg = tiny_config(tiny_dataset, table, tmp_path)
    started: list[int] = []

    def on_event(event):
        if isinstance(event, RunStarted):
            started.append(event.run_id)

    result, baseline = experiments.run_with_baseline(cfg, on_event, should_stop=lambda: len(started) > 1, cwd=tmp_path)
    assert (result.status, baseline.status, baseline.reused) == ("FINISHED", "INTERRUPTED", False)
    assert started == [1, 2] and baseline.run_id == 2
    # an interrupted baseline answers nothing: the next run trains a new one, to the end
    assert experiments.find_baseline(cfg, cwd=tmp_path) is None
    again = experiments.find_or_train_baseline(cfg, cwd=tmp_path)
    assert (again.status, again.run_id) == ("FINISHED", 3)
    assert experiments.find_baseline(cfg, cwd=tmp_path).run_id == 3


def test_a_resumed_kirec_run_gets_its_baseline_too(tiny_dataset, table, tmp_path):
    cfg = tiny_config(tiny_dataset, table, tmp_path)
    epochs: list[int] = []

    def on_event(event):
        if isinstance(event, EpochEnd):
            epochs.append(event.epoch)

    interrupted = experiments.run(cfg, on_event, should_stop=lambda: bool(epochs), cwd=tmp_path)
    assert interrupted.status == "INTERRUPTED"
    resumed = invoke("run", "--resume", str(interrupted.run_id), "--db", cfg.db, "--json", cwd=tmp_path)
    assert resumed.exit_code == 0, resumed.output
    payload = json.loads(resumed.stdout)
    assert payload["status"] == "FINISHED" and payload["baseline"]["status"] == "FINISHED"
    base = stored_runs(Path(cfg.db))[-1]
    assert base.summary.method == "id" and base.config["train"] == stored_runs(Path(cfg.db))[0].config["train"]


def test_the_baseline_config_is_the_bench_id_cell_of_the_same_settings():
    cfg = RunConfig()
    cfg.name, cfg.train.seed, cfg.model.backbone = "mine", 9, "gru4rec"
    cfg.knowledge.fusion, cfg.knowledge.embed_text = "concat", "both"
    base = experiments.baseline_config(cfg)
    assert base.knowledge == KnowledgeConfig(method="id") and base.name == "mine baseline"
    assert (base.train, base.model, base.data, base.eval) == (cfg.train, cfg.model, cfg.data, cfg.eval)
    other = RunConfig()
    other.train.seed, other.model.backbone, other.knowledge.fusion = 9, "gru4rec", "add"
    assert config_identity(base.to_dict()) == config_identity(experiments.baseline_config(other).to_dict())
    assert experiments.wants_baseline(RunConfig())  # the embedded default is a knowledge method: make run compares
    assert not experiments.wants_baseline(base)
    sided = RunConfig()
    sided.knowledge.method, sided.knowledge.side_fields = "id", "raw"
    assert experiments.wants_baseline(sided)  # id + side values' embeddings is not the plain ID model
    assert experiments.baseline_config(sided).knowledge == KnowledgeConfig(method="id")
