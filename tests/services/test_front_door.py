"""The front door: one declaration per setting makes the CLI flags and the Train form, one renderer makes the
CLI's and the Train log's lines, and the item use cases answer what the screens and commands show."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from engine import choices
from engine.events import EpochEnd, RunFinished, RunStarted, Status, StepLoss
from kirec_tui.event_text import event_line
from kirec_tui.options import BY_KEY, FORM_SETTINGS, SETTINGS, flags_of
from kirec_tui.widgets.train_form import FIELDS
from tests.cli_support import invoke


def test_every_setting_offers_the_engines_own_choices():
    engine_lists = {
        "model.backbone": choices.BACKBONE_CHOICES,
        "knowledge.method": choices.METHOD_CHOICES,
        "knowledge.fusion": choices.FUSION_CHOICES,
        "knowledge.reduction": choices.REDUCTION_CHOICES,
        "train.loss": choices.LOSS_CHOICES,
        "eval.protocol": choices.PROTOCOL_CHOICES,
        "knowledge.extractor": choices.EXTRACTOR_CHOICES,
        "knowledge.encoder": choices.ENCODER_CHOICES,
        "knowledge.embed_text": choices.EMBED_TEXT_CHOICES,
    }
    for key, names in engine_lists.items():
        assert BY_KEY[key].choices == names, key
    from engine.config import RunConfig, flatten_dotted

    known = set(flatten_dotted(RunConfig().to_dict()))
    assert {s.key for s in SETTINGS} <= known  # every declared key is a real config field


def test_the_help_of_every_command_is_made_from_the_declarations(tmp_path):
    run_help = invoke("run", "--help", cwd=tmp_path).output
    for name in (*choices.FUSION_CHOICES, *choices.METHOD_CHOICES, *choices.LOSS_CHOICES, "--exclude-history"):
        assert name in run_help, name
    extract_help = invoke("extract", "--help", cwd=tmp_path).output
    assert all(name in extract_help for name in choices.EXTRACTOR_CHOICES) and "--llm-concurrency" in extract_help
    embed_help = invoke("embed", "--help", cwd=tmp_path).output
    assert all(name in embed_help for name in choices.EMBED_TEXT_CHOICES) and "--text" in embed_help


def test_a_declared_flag_sets_its_config_key(tmp_path):
    """--fusion reaches knowledge.fusion (the bad value is named by the key it was mapped to), before any data."""
    result = invoke("run", "--fusion", "gatee", "--db", str(tmp_path / "runs.db"), cwd=tmp_path)
    assert result.exit_code == 2 and "knowledge.fusion" in result.output and "'gate'" in result.output
    assert not (tmp_path / "runs.db").exists()
    assert flags_of({"fusion": "add", "epochs": 3}, ("fusion", "epochs")) == {
        "knowledge.fusion": "add",
        "train.epochs": 3,
    }


def test_the_train_form_shows_the_declared_form_settings_in_order():
    assert [(f[0], f[1]) for f in FIELDS[:-1]] == [(s.param, s.key) for s in FORM_SETTINGS]
    assert FIELDS[-1][0] == "extra"  # free key=value pairs for everything else
    fusion = next(f for f in FIELDS if f[1] == "knowledge.fusion")
    assert fusion[3] == choices.FUSION_CHOICES


def test_one_line_per_event_for_both_front_ends():
    assert event_line(Status("careful", "warning")) == "[yellow]careful[/]"
    assert "[dim]" in event_line(Status("loading"))
    assert event_line(RunStarted(3, "kirec-sasrec", "cpu")) == "run [bold]3[/] kirec-sasrec on cpu"
    epoch = event_line(EpochEnd(2, 0.5, {"NDCG@10": 0.1234, "HR@10": 0.2}, 1.0, 0.5, True))
    assert "epoch   2" in epoch and "NDCG@10 0.1234" in epoch and "HR@10 0.2000" in epoch and "best" in epoch
    unvalidated = event_line(EpochEnd(4, 0.25, {}, 1.0, 0.0, False))  # eval.every skipped this epoch
    assert unvalidated == "epoch   4  loss 0.2500  (1.0s)"
    finished = event_line(RunFinished(3, "FAILED", error="boom"))
    assert "[red]FAILED" in finished and "boom" in finished
    assert "NDCG@10 0.0500" in event_line(RunFinished(3, "FINISHED", test={"NDCG@10": 0.05, "MRR": 0.1}))
    assert event_line(StepLoss(1, 1, 10, 0.3)) is None  # bars and charts show it, not the log


def test_the_cli_progress_prints_the_shared_lines():
    from kirec_tui.progress import ConsoleProgress

    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None)
    with ConsoleProgress(console, 2) as progress:
        progress(RunStarted(5, "id-sasrec", "cpu"))
        progress(EpochEnd(1, 0.5, {"NDCG@10": 0.25, "HR@10": 0.5}, 1.0, 0.5, False))
    text = buffer.getvalue()
    assert "run 5 id-sasrec on cpu" in text and "valid NDCG@10 0.2500" in text


def test_nearest_neighbours_are_the_highest_cosines_without_the_item_itself():
    from engine.services.items import nearest

    rng = np.random.default_rng(1)
    table = rng.normal(size=(30, 8)).astype(np.float32)
    table[0] = 0.0
    found = nearest(table * rng.uniform(0.5, 3, size=(30, 1)), 4, k=5)  # cosine ignores each row's length
    unit = table / np.linalg.norm(table, axis=1, keepdims=True).clip(1e-12)
    cosines = {i: float(unit[i] @ unit[4]) for i in range(1, 30) if i != 4}
    expected = sorted(cosines, key=lambda i: -cosines[i])[:5]
    assert [i for i, _ in found] == expected
    assert [c for _, c in found] == pytest.approx([cosines[i] for i in expected], abs=1e-5)


def test_an_items_view_has_its_popularity_rank_and_only_its_own_texts_answers(tiny_dataset, tmp_path):
    from engine.config import DataConfig
    from engine.extraction.cache import ExtractionCache, ExtractionRecord, default_cache_path, item_text_hash
    from engine.services import datasets, items
    from engine.services.errors import NotFoundError

    ds = datasets.load(DataConfig(dataset=str(tiny_dataset), cache_dir=str(tmp_path / "c")), cwd=tmp_path)
    popularity = ds.item_popularity()
    top = int(np.argmax(popularity[1:])) + 1
    with ExtractionCache(default_cache_path(tmp_path)) as cache:
        cache.put_many(
            "model",
            "hash",
            "p",
            [
                ExtractionRecord(ds.item_ids[top], item_text_hash(text), {"colour": colour}, "{}", "ok", 1)
                for text, colour in ((ds.item_text[top], "red"), ({"title": "another dataset's item"}, "blue"))
            ],
        )
    view = items.item_view(ds, top, default_cache_path(tmp_path))
    assert view.popularity_rank == 1 and view.popularity == popularity[top]
    assert [a.attributes for a in view.attributes] == [{"colour": "red"}]  # the same raw id elsewhere is not it
    with pytest.raises(NotFoundError, match="not in dataset"):
        items.item_index(ds, "no-such-item")
