"""Ranking analysis over real trained runs: a user's held-out rank per run, the rank-change table between two
runs (its metrics are the runs' own test metrics), the at-once answer for an unknown user, `kirec runs ranks`;
and the text-space neighbours' first embedding with progress, then the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.cli_support import invoke

from engine.config import load_config
from engine.services import ranking, runs
from engine.services.items import EMBED_CHUNK, TextNeighbours, embed_missing
from engine.services.progress import Progress
from tests.data_support import train_tiny_run


@pytest.fixture
def two_runs(tmp_path, tiny_dataset):
    return [train_tiny_run(tmp_path, tiny_dataset, seed) for seed in (1, 2)]


def store_of(tmp_path):
    return runs.open_runs(tmp_path / "runs.db")


def test_held_out_rank_is_the_position_among_all_items_the_history_excluded(tmp_path, two_runs):
    store = store_of(tmp_path)
    trained = runs.load_trained(store, two_runs[0], cwd=tmp_path)
    held = ranking.held_out_rank(trained, "u5")
    dataset = trained.dataset
    assert held.item == dataset.test_target(held.user) and held.item_id == dataset.item_ids[held.item]
    # Every unseen item, best first, through the recommendation path: the held-out item's place in it.
    everything = runs.recommend_for(trained, "u5", k=dataset.num_items, history="test").recommendations
    assert held.rank == [r.item for r in everything].index(held.item) + 1
    assert held.num_items == 30 and held.history_length == len(dataset.test_history(held.user))
    with pytest.raises(LookupError, match="'nobody' is not in dataset"):
        ranking.held_out_rank(trained, "nobody")


def test_rank_changes_table_agrees_with_the_runs_test_metrics(tmp_path, two_runs):
    store = store_of(tmp_path)
    loaded: dict = {}
    seen: list[Progress] = []
    table = ranking.compare_run_ids(store, *two_runs, cwd=tmp_path, on_progress=seen.append, loaded=loaded)
    assert seen[0].stage == f"loading run {two_runs[0]}'s model" and seen[0].unit == "runs"
    assert set(loaded) == set(two_runs)  # the caller's cache is filled
    everyone = table.groups[0]
    assert everyone.name == "all users" and everyone.users == table.users == 60
    assert everyone.gained + everyone.same + everyone.lost == 60 == sum(everyone.buckets.values())
    for run_id, ndcg in ((two_runs[0], everyone.ndcg_a), (two_runs[1], everyone.ndcg_b)):
        assert ndcg == pytest.approx(store.get_run(run_id).test_metrics["test/NDCG@10"], abs=1e-6)
    kinds = {g.name: g for g in table.groups}
    assert kinds["head items"].users + kinds["tail items"].users == 60
    assert sum(g.users for g in table.groups if g.kind == "history") == 60
    # the same run against itself: nobody moves
    itself = ranking.compare_runs(loaded[two_runs[0]], loaded[two_runs[0]]).groups[0]
    assert (itself.same, itself.buckets["same"]) == (60, 60)


def test_unknown_user_is_answered_from_the_dataset_without_loading_a_model(tmp_path, two_runs, monkeypatch):
    from engine.services import datasets
    from engine.store import RunNotFoundError

    store = store_of(tmp_path)
    dataset = runs.load_trained(store, two_runs[0], cwd=tmp_path).dataset

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(runs, "load_trained", no_load)
    assert ranking.unknown_user(store, two_runs, dataset, "nobody") == (
        f"user 'nobody' is not in dataset '{dataset.name}' (after preprocessing)"
    )
    assert ranking.unknown_user(store, two_runs, dataset, "u5") is None
    other = datasets.load(dataset_config(tmp_path / "tiny", max_history=6), cwd=tmp_path)
    assert other.fingerprint != dataset.fingerprint
    assert ranking.unknown_user(store, two_runs, other, "nobody") is None  # other data: loading the run will say
    with pytest.raises(RunNotFoundError):
        ranking.unknown_user(store, [999], dataset, "u5")


def dataset_config(path, **options):
    return load_config(flags={"data.dataset": str(path), **{f"data.{k}": v for k, v in options.items()}}).data


def test_cli_runs_ranks_prints_the_table_and_json(tmp_path, two_runs):
    a, b = two_runs
    shown = invoke("runs", "ranks", str(a), str(b), "--db", str(tmp_path / "runs.db"), cwd=tmp_path)
    assert shown.exit_code == 0, shown.output
    assert f"run {a} → run {b}" in shown.stdout and "head items" in shown.stdout and "+1–9" in shown.stdout
    as_json = invoke("runs", "ranks", str(a), str(b), "--json", "--db", str(tmp_path / "runs.db"), cwd=tmp_path)
    payload = json.loads(as_json.stdout)
    assert (payload["run_a"], payload["run_b"], payload["users"]) == (a, b, 60)
    assert payload["groups"][0]["name"] == "all users"
    missing = invoke("runs", "ranks", str(a), "999", "--db", str(tmp_path / "runs.db"), cwd=tmp_path)
    assert missing.exit_code == 4 and "run 999 not found" in missing.output and "Traceback" not in missing.output


class CountingEncoder:
    """A text encoder whose vectors are set by the text's length; counts its loads and the texts it encodes."""

    name = "counting"
    fingerprint = "counting-v1"

    def __init__(self) -> None:
        self.loads = 0
        self.encoded = 0

    @property
    def dim(self) -> int:
        self.loads += 1
        return 3

    def encode(self, texts, batch_size: int = 64):
        self.encoded += len(texts)
        return np.array([[len(t), 1.0, (len(t) % 7)] for t in texts], dtype=np.float32)


def test_first_embedding_reports_progress_and_the_next_reads_the_cache(tmp_path):
    from engine.semantic import EmbeddingCache

    texts = [f"item text {i}" for i in range(EMBED_CHUNK * 2 + 10)] + ["item text 0"]  # one duplicate
    encoder = CountingEncoder()
    seen: list[Progress] = []
    with EmbeddingCache(tmp_path / "emb") as cache:
        assert embed_missing(texts, encoder, cache, seen.append) == len(texts) - 1
        assert encoder.encoded == len(texts) - 1
        assert seen[0].stage == "loading the text encoder"
        embedding = [p for p in seen if p.stage == "embedding item texts"]
        assert [p.done for p in embedding] == [0, EMBED_CHUNK, 2 * EMBED_CHUNK, len(texts) - 1]
        assert all(p.total == len(texts) - 1 for p in embedding)
        assert embedding[1].eta is not None and embedding[-1].eta == 0
        again: list[Progress] = []
        assert embed_missing(texts, encoder, cache, again.append) == 0
    assert again == [] and encoder.encoded == len(texts) - 1


def test_text_neighbours_load_no_encoder_once_the_dataset_is_embedded(tmp_path, tiny_dataset, monkeypatch):
    from engine.semantic import encoders
    from engine.services import datasets

    made: list[CountingEncoder] = []

    def make(name, llm_model=None, device=None):
        made.append(CountingEncoder())
        return made[-1]

    monkeypatch.setattr(encoders, "make_encoder", make)
    dataset = datasets.load(dataset_config(tiny_dataset), cwd=tmp_path)
    first = TextNeighbours(dataset, tmp_path / "emb")
    found = first.of(3, 5)
    assert len(found) == 5 and 3 not in {i for i, _ in found} and first.ready
    assert made[0].encoded == 30
    second = TextNeighbours(dataset, tmp_path / "emb")  # a new screen, or a new session
    assert second.of(3, 5) == found
    assert made[1].loads == 0 and made[1].encoded == 0
