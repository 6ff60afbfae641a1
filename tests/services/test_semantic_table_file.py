"""A semantic table exported with `kirec embed` trains exactly like embedding in the run, and a wrong file is a
one-line error naming it."""

from __future__ import annotations

import json

import numpy as np

from engine.semantic.table_file import load_semantic_table, save_semantic_table
from test_cli import invoke

TINY_RUN = [
    "--hidden-size",
    "16",
    "--max-len",
    "10",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--epochs",
    "1",
    "--json",
    "--set",
    "knowledge.embed_text=raw",
    "--no-baseline",
]


def test_an_exported_table_gives_the_same_run_as_embedding_in_the_run(tiny_dataset, tmp_path):
    table_path = tmp_path / "raw.npy"
    result = invoke("embed", "--dataset", str(tiny_dataset), "--text", "raw", "--export", str(table_path), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    table = np.load(table_path)
    assert table.dtype == np.float32 and table.shape[1] == 384 and not table[0].any() and np.abs(table[1:]).sum() > 0

    runs = {}
    for name, extra in {"embedded": [], "from_file": ["--set", f"knowledge.semantic_table={table_path}"]}.items():
        out = invoke(
            "run", "--dataset", str(tiny_dataset), "--db", str(tmp_path / "runs.db"), *TINY_RUN, *extra, cwd=tmp_path
        )
        assert out.exit_code == 0, out.output
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs["from_file"]["test"] == runs["embedded"]["test"]
    assert len(runs["from_file"]["info"]["semantic_table_sha256"]) == 16
    assert "embed_encoded" not in runs["from_file"]["info"]  # neither the LLM nor the encoder was asked


def test_a_half_precision_table_reads_back_as_float32(tmp_path):
    table = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    table[0] = 0
    path = save_semantic_table(table, tmp_path / "t.npy", half=True)
    assert np.load(path).dtype == np.float16
    loaded, digest = load_semantic_table(path, num_items=5)
    assert loaded.dtype == np.float32 and np.allclose(loaded, table, atol=2e-3) and len(digest) == 16


def test_a_table_of_the_wrong_size_is_a_one_line_error_naming_the_file(tiny_dataset, tmp_path):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 8), dtype=np.float32))
    out = invoke(
        "run",
        "--dataset",
        str(tiny_dataset),
        "--db",
        str(tmp_path / "runs.db"),
        *TINY_RUN,
        "--set",
        f"knowledge.semantic_table={wrong}",
        cwd=tmp_path,
    )
    assert out.exit_code == 2
    message = out.output.strip()
    assert "wrong.npy has 3 rows" in message and "knowledge.semantic_table" in message and "Traceback" not in message
    (tmp_path / "text.npy").write_text("not numpy")
    for bad, problem in [("missing.npy", "does not exist"), ("text.npy", "not a .npy array")]:
        out = invoke(
            "run",
            "--dataset",
            str(tiny_dataset),
            "--db",
            str(tmp_path / "runs.db"),
            *TINY_RUN,
            "--set",
            f"knowledge.semantic_table={tmp_path / bad}",
            cwd=tmp_path,
        )
        assert out.exit_code == 2 and problem in out.output
