"""Listing, tagging, annotating, restoring and filtered export of runs: the services (engine.services.runs) and
`kirec runs list | tag | note | restore | export` over them, on the fixed runs.db of tests/tui_support."""

from __future__ import annotations

import csv
import io
import json

import pytest
from tests.cli_support import invoke

from engine.services import runs as runs_service
from engine.store import open_store


def test_list_runs_shows_no_fusion_for_a_method_that_fuses_nothing(tmp_path):
    with open_store(tmp_path / "runs.db") as store:
        plain = store.create_run("p", {}, "d", "fp", "sasrec", "id", "cpu", {"knowledge.fusion": "gate"}, None, "v")
        fused = store.create_run("f", {}, "d", "fp", "sasrec", "kirec", "cpu", {"knowledge.fusion": "add"}, None, "v")
        other = store.create_run("o", {}, "d", "fp", "sasrec", "retired", "cpu", {"knowledge.fusion": "add"}, None, "v")
        fusions = {r.id: r.fusion for r in runs_service.list_runs(store)}
        assert store.get_run(plain).summary.fusion == "gate"  # the store keeps what was recorded
    assert fusions == {plain: None, fused: "add", other: "add"}  # an unknown method's is shown as recorded
    assert runs_service.method_uses_fusion("kirec") and runs_service.method_uses_fusion("unisrec") is False


def test_tag_edits_parse_additions_and_removals():
    assert runs_service.parse_tags(" a, b  c,,a ") == ["a", "b", "c"]
    assert runs_service.parse_tag_edits("keep -drop, new") == (["keep", "new"], ["drop"])
    with pytest.raises(ValueError, match="must be one word|longer"):
        runs_service.parse_tags("x" * 80)


def test_filtered_export_keeps_the_runs_the_listing_shows(runs_db):
    db, ids = runs_db
    with open_store(db) as store:
        store.set_labels(ids[0], ["paper"])
        text = runs_service.export_runs(store, None, "json", curves=True, filters={"tag": "paper"})
        assert [d["id"] for d in json.loads(text)] == [ids[0]]
        beauty = runs_service.filtered_run_ids(store, None, {"dataset": "amazon-beauty"})
        assert beauty == [ids[2], ids[3]]
        assert runs_service.filtered_run_ids(store, [ids[3], ids[0]], {"dataset": "amazon-beauty"}) == [ids[3]]
        assert runs_service.filtered_run_ids(store, None, {"text": None}) is None  # no filter: every run


def test_cli_tag_note_list_and_restore(tmp_path, runs_db):
    db, ids = runs_db
    run = str(ids[1])
    tagged = invoke("runs", "tag", run, "baseline", "gru", "--db", str(db), cwd=tmp_path)
    assert tagged.exit_code == 0 and tagged.stdout.strip() == f"run {run} tags: baseline gru"
    removed = invoke("runs", "tag", run, "gru", "--remove", "--db", str(db), cwd=tmp_path)
    assert removed.stdout.strip() == f"run {run} tags: baseline"
    noted = invoke("runs", "note", run, "dropout", "0.5", "helps", "--db", str(db), cwd=tmp_path)
    assert noted.stdout.strip() == f"run {run} note: dropout 0.5 helps"
    listed = json.loads(invoke("runs", "list", "--tag", "baseline", "--json", "--db", str(db), cwd=tmp_path).stdout)
    assert [(r["id"], r["labels"], r["note"]) for r in listed] == [(ids[1], ["baseline"], "dropout 0.5 helps")]
    shown = invoke("runs", "show", run, "--db", str(db), cwd=tmp_path).stdout
    assert "tags: baseline" in shown and "note: dropout 0.5 helps" in shown
    assert invoke("runs", "note", run, "--clear", "--db", str(db), cwd=tmp_path).stdout.strip().endswith("no note")

    for target in (run, str(ids[2])):
        assert invoke("runs", "delete", target, "--yes", "--db", str(db), cwd=tmp_path).exit_code == 0
    visible = json.loads(invoke("runs", "list", "--json", "--db", str(db), cwd=tmp_path).stdout)
    assert ids[1] not in {r["id"] for r in visible}
    with_deleted = json.loads(invoke("runs", "list", "--deleted", "--json", "--db", str(db), cwd=tmp_path).stdout)
    assert {r["id"]: r["deleted"] for r in with_deleted}[ids[1]] is True
    restored = invoke("runs", "restore", run, str(ids[2]), "--db", str(db), cwd=tmp_path)
    assert restored.exit_code == 0 and restored.stdout.strip() == f"restored runs {run}, {ids[2]}"
    again = json.loads(invoke("runs", "list", "--json", "--db", str(db), cwd=tmp_path).stdout)
    assert {ids[1], ids[2]} <= {r["id"] for r in again}


def test_cli_bad_tags_and_unknown_runs_are_one_line_errors(tmp_path, runs_db):
    db, _ = runs_db
    bad = invoke("runs", "tag", "1", "two words", "--db", str(db), cwd=tmp_path)
    assert bad.exit_code == 2 and "one word" in bad.output and "Traceback" not in bad.output
    missing = invoke("runs", "restore", "999", "--db", str(db), cwd=tmp_path)
    assert missing.exit_code == 4 and "run 999 not found" in missing.output
    assert invoke("runs", "note", "999", "x", "--db", str(db), cwd=tmp_path).exit_code == 4
    curves_csv = invoke("runs", "export", "--curves", "--db", str(db), cwd=tmp_path)
    assert curves_csv.exit_code == 2 and "JSON only" in curves_csv.output


def test_cli_export_filters_and_curves(tmp_path, runs_db):
    db, ids = runs_db
    exported = invoke(
        "runs", "export", "--format", "json", "--curves", "--dataset", "amazon-beauty", "--db", str(db), cwd=tmp_path
    )
    assert exported.exit_code == 0, exported.output
    documents = json.loads(exported.stdout)
    assert [d["name"] for d in documents] == ["kirec-gate-beauty", "bert-fail"]
    assert [p["value"] for p in documents[1]["curves"]["valid/NDCG@10"]] == [0.01]
    failed = invoke("runs", "export", "--status", "FAILED", "--db", str(db), cwd=tmp_path)
    assert [r["name"] for r in csv.DictReader(io.StringIO(failed.stdout))] == ["bert-fail"]
    by_text = invoke("runs", "export", "--filter", "gru", "-o", "gru.csv", "--db", str(db), cwd=tmp_path)
    assert by_text.exit_code == 0
    with (tmp_path / "gru.csv").open(newline="") as fh:
        assert [int(r["id"]) for r in csv.DictReader(fh)] == [ids[1]]
    both = invoke("runs", "export", str(ids[0]), str(ids[2]), "--method", "kirec", "--db", str(db), cwd=tmp_path)
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(both.stdout))] == [ids[2]]
    bad_status = invoke("runs", "export", "--status", "DONE", "--db", str(db), cwd=tmp_path)
    assert bad_status.exit_code == 2 and "unknown run status" in bad_status.output
