"""Every bad input through the real `kirec` command line: one clear line on stderr naming the file, line or field,
exit 2, no traceback, and the runs database byte for byte unchanged (issue #9). Bad files are real files here.

Data-file cases go through `kirec data show` (it reads a dataset without importing torch, so the test stays fast)
and once through `kirec run`, which must fail the same way before it creates a run row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data_support import write_generic_dataset

ROOT = Path(__file__).resolve().parents[2]
RUN_SMALL = [
    "--method",
    "id",
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
    "--set",
    "train.num_threads=1",
]


def kirec(*args: str, cwd: Path, env: dict[str, str] | None = None, fresh: bool = False) -> subprocess.CompletedProcess:
    """The CLI with no KIREC_* settings but those given: in this process through Click's runner (fast), or with
    `fresh` in a new interpreter with this checkout's engine (what a user's shell sees, import time included)."""
    if fresh:
        base = {k: v for k, v in os.environ.items() if not k.startswith("KIREC_")}
        base["PYTHONPATH"] = str(ROOT)
        base["COLUMNS"] = "80"  # a narrow terminal: a message must still be one line
        return subprocess.run(
            [sys.executable, "-m", "kirec_tui.cli", *args],
            cwd=cwd,
            env={**base, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
    from typer.testing import CliRunner

    from kirec_tui.cli import app

    unset = {k: None for k in os.environ if k.startswith("KIREC_")}
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, list(args), env={**unset, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback the user would see: let pytest show it
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str, progress: bool = False) -> str:
    """Exit 2, no traceback, one line holding every needle. With `progress`, status lines may come before it
    (kirec run reports its stages) but there is still exactly one error line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if progress:
        lines = [line for line in lines if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (the db and any -wal/-journal beside it)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def runs_db(tmp_path: Path) -> Path:
    """A runs database holding one finished run, in a folder of its own."""
    from engine.store import open_store

    db = tmp_path / "store" / "runs.db"
    db.parent.mkdir()
    store = open_store(db)
    run_id = store.create_run("earlier", {}, "d", "fp", "sasrec", "id", "cpu", params={})
    store.finish_run(run_id, "FINISHED")
    store.close()
    return db


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_generic_dataset(tmp_path / "ds", users=12, items=8, length=5)


# --- config: flags, --set, environment, files --------------------------------------------------------------------

# Run in a fresh interpreter: the command, then (at exit) which heavy libraries it had imported.
HEAVY_PROBE = (
    "import atexit, sys\n"
    "HEAVY = ('torch', 'sqlalchemy', 'sqlmodel', 'transformers', 'llama_cpp', 'numpy')\n"
    "atexit.register(lambda: sys.stderr.write('loaded: ' + ','.join(m for m in HEAVY if m in sys.modules) + '\\n'))\n"
    "sys.argv = ['kirec', *sys.argv[1:]]\n"
    "from kirec_tui.cli import main\n"
    "main()\n"
)


def test_unknown_choice_fails_fast_with_did_you_mean_and_no_run_row(runs_db, tmp_path):
    """Fast by construction, not by a clock: the refusal comes before torch, SQLAlchemy or the data are imported
    (what it costs in seconds, `benchmarks/bench_cli_startup.py` measures)."""
    before = fingerprint(runs_db.parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KIREC_")},
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "80",
    }
    result = subprocess.run(
        [sys.executable, "-c", HEAVY_PROBE, "run", "--set", "knowledge.fusion=gatee", "--db", str(runs_db)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    stderr, _, loaded = result.stderr.rpartition("loaded: ")
    result.stderr = stderr
    assert_one_line_error(result, "knowledge.fusion: unknown 'gatee'; did you mean 'gate'?")
    assert loaded.strip() == "", f"a bad choice imported {loaded.strip()} before refusing"
    assert fingerprint(runs_db.parent) == before


BAD_VALUES = [
    (["--lr", "-0.01"], ["train.lr", "--lr", "-0.01"]),
    (["--lr", "nan"], ["train.lr", "nan"]),
    (["--set", "model.dropout=1.5"], ["--set model.dropout", "[0, 1)", "1.5"]),
    (["--hidden-size", "0"], ["model.hidden_size", "--hidden-size", "at least 1"]),
    (["--hidden-size", "33"], ["model.num_heads", "not divisible"]),
    (["--set", "eval.ks=5"], ["--set eval.ks", "must contain 10", "NDCG@10"]),
    (["--batch-size", "0"], ["train.batch_size"]),
    (["--epochs", "0"], ["train.epochs"]),
    (["--device", "gpu"], ["train.device", "'gpu'"]),
    (["--backbone", "sasrek"], ["model.backbone", "did you mean 'sasrec'?"]),
    (["--loss", "bce2"], ["train.loss", "did you mean 'bce'?"]),
    (["--set", "knowledge.embed_text=attribute"], ["knowledge.embed_text", "did you mean 'attributes'?"]),
    (["--set", "knowledge.prompt=nosuch-prompt"], ["knowledge.prompt", "nosuch-prompt"]),
    (["--set", "train.epoch=1"], ["--set train.epoch", "did you mean 'train.epochs'?"]),
    (["--set", "trian.epochs=1"], ["--set trian.epochs", "did you mean 'train'?"]),
    (["--set", "train.lr=fast"], ["--set train.lr", "expected float", "'fast'"]),
    # a rule of the method itself (engine/methods): checked as early, before any data or extraction
    (["--method", "init", "--reduction", "adapter-mlp"], ["knowledge.reduction", "adapter-mlp", "cannot initialise"]),
]


@pytest.mark.parametrize("args, needles", BAD_VALUES, ids=[" ".join(args) for args, _ in BAD_VALUES])
def test_bad_value_is_one_line_naming_the_field(runs_db, dataset, tmp_path, args, needles):
    before = fingerprint(runs_db.parent)
    # the small, ID-only settings first (the last of a repeated flag wins), so a check that let the bad value
    # through would train one tiny epoch rather than start the LLM
    result = kirec("run", "--dataset", str(dataset), "--db", str(runs_db), *RUN_SMALL, *args, cwd=tmp_path)
    line = assert_one_line_error(result, *needles)
    assert fingerprint(runs_db.parent) == before
    if "train.epoch=1" in args:
        assert "--epoch " not in line and "(--epochs)" not in line  # nobody typed a flag


def test_bad_environment_value_names_the_variable_but_spares_read_only_commands(runs_db, dataset, tmp_path):
    env = {"KIREC_TRAIN__EPOCHS": "abc"}
    shown = kirec("data", "show", str(dataset), "--json", cwd=tmp_path, env=env)  # reads only the data settings
    assert shown.returncode == 0 and json.loads(shown.stdout)["users"] == 12, shown.stderr
    assert_one_line_error(kirec("run", "--db", str(runs_db), cwd=tmp_path, env=env), "KIREC_TRAIN__EPOCHS", "'abc'")
    listed = kirec("runs", "list", "--db", str(runs_db), "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == ["earlier"]
    # the db itself still comes from the environment for them
    elsewhere = kirec("runs", "list", "--json", cwd=tmp_path, env={**env, "KIREC_DB": str(runs_db)})
    assert [r["name"] for r in json.loads(elsewhere.stdout)] == ["earlier"]


@pytest.mark.parametrize(
    "write, needles",
    [
        (lambda p: p.mkdir(), ["is a directory"]),
        (lambda p: p.write_bytes(bytes(range(128, 256)) * 4), ["not UTF-8", "line 1"]),
        (lambda p: p.write_bytes(b"\x00\x01\x02 binary"), ["NUL", "binary"]),
        (lambda p: p.write_text('model = "sasrec"\n'), ["'model' is a section", "backbone"]),
        (lambda p: p.write_text("[train]\nepochs = 3\nlr = -1.0\n"), ["train.lr", "positive"]),
        (
            lambda p: p.write_text("[knowledge]\nfusion = 'gatee'\n"),
            ["knowledge.fusion: unknown 'gatee'; did you mean 'gate'?"],
        ),
        (lambda p: p.write_text("[train]\nepochs = true\n"), ["train.epochs", "expected int"]),
        (lambda p: p.write_text("[train\n"), ["invalid TOML"]),
    ],
    ids=[
        "directory",
        "not-utf8",
        "binary",
        "section-as-value",
        "negative-lr",
        "unknown-choice",
        "bool-for-int",
        "invalid-toml",
    ],
)
def test_bad_config_file_is_one_line_naming_the_file(runs_db, tmp_path, write, needles):
    path = tmp_path / "bad.toml"
    write(path)
    before = fingerprint(runs_db.parent)
    result = kirec("run", "--config", str(path), "--db", str(runs_db), cwd=tmp_path)
    assert_one_line_error(result, str(path), *needles)
    assert fingerprint(runs_db.parent) == before


def test_config_file_with_a_utf8_bom_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[train]\nepochs = 3\n")
    from engine.config import load_config

    assert load_config(path).train.epochs == 3


# --- data files ----------------------------------------------------------------------------------------------------

HEADER = "user,item,timestamp\n"
ROWS = "".join(f"u{u},i{(u + t) % 8},{100 + t}\n" for u in range(12) for t in range(5))


BAD_DATA_FILES = {
    "latin-1": (
        "interactions.csv",
        lambda: (HEADER + "u1,caf\xe9,3\n" + ROWS).encode("latin-1"),
        ["interactions.csv line 2", "not UTF-8", "0xe9"],
    ),
    "utf-16": (
        "interactions.csv",
        lambda: (HEADER + ROWS).encode("utf-16"),
        ["interactions.csv line 1", "UTF-16 text; save the file as UTF-8"],
    ),
    "utf-16-no-bom": (
        "interactions.csv",
        lambda: (HEADER + ROWS).encode("utf-16-le"),
        ["interactions.csv line 1", "NUL"],
    ),
    "binary": ("interactions.csv", lambda: bytes(range(256)) * 64, ["interactions.csv line 1", "binary"]),
    "10-MB-line": (
        "interactions.csv",
        lambda: (HEADER + "u1,i1," + "9" * 10_000_000 + "\n" + ROWS).encode(),
        ["interactions.csv line 2", "field larger than field limit"],
    ),
    "unclosed-quote": (
        "interactions.csv",
        lambda: (HEADER + 'u1,"i1,1\n' + ROWS).encode(),
        ["interactions.csv line 2", "unclosed quote"],
    ),
    "items-cp1252": (
        "items.jsonl",
        lambda: '{"id": "i1", "title": "Caf\xe9"}\n'.encode("cp1252"),
        ["items.jsonl line 1", "not UTF-8"],
    ),
    "items-duplicate-id": (
        "items.jsonl",
        lambda: b'{"id": "i1", "title": "a"}\n{"id": "i2"}\n{"id": "i1", "title": "c"}\n',
        ["items.jsonl line 3", "duplicate item id 'i1'", "first on line 1"],
    ),
}


@pytest.mark.parametrize("case", BAD_DATA_FILES)
def test_bad_data_file_is_one_line_naming_file_and_line(dataset, tmp_path, case):
    name, content, needles = BAD_DATA_FILES[case]
    (dataset / name).write_bytes(content())
    result = kirec("data", "show", str(dataset), "--json", cwd=tmp_path)
    assert_one_line_error(result, *needles)
    assert not (tmp_path / ".cache").exists()  # nothing cached from a file that failed


def test_bad_data_file_fails_kirec_run_before_any_run_row(runs_db, dataset, tmp_path):
    (dataset / "interactions.csv").write_bytes((HEADER + ROWS).encode("utf-16"))
    before = fingerprint(runs_db.parent)
    result = kirec("run", "--dataset", str(dataset), "--db", str(runs_db), *RUN_SMALL, cwd=tmp_path)
    assert_one_line_error(result, "interactions.csv line 1", "UTF-16 text", progress=True)
    assert fingerprint(runs_db.parent) == before


def test_excel_bom_header_is_read_not_rejected(dataset, tmp_path):
    (dataset / "interactions.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + ROWS).encode())
    result = kirec("data", "show", str(dataset), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["users"] == 12


def test_dataset_path_that_is_a_file_says_so(dataset, tmp_path):
    result = kirec("data", "show", str(dataset / "interactions.csv"), cwd=tmp_path)
    assert_one_line_error(result, "interactions.csv is a file", str(dataset))


def test_items_without_text_are_a_warning_with_their_count(dataset, tmp_path):
    lines = (dataset / "items.jsonl").read_text().splitlines()
    (dataset / "items.jsonl").write_text("\n".join(lines[:5]) + "\n")  # items i5, i6, i7 lose their text
    result = kirec("data", "show", str(dataset), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["items"] == 8
    assert "3 of 8 items have no text" in result.stderr


# --- items the interactions name but the items file does not describe ---------------------------------------------

TEXTLESS_PROMPT = '''name = "tiny"
template = """Describe the item with:
{schema}
Item: {title}
Genres: {genres}"""
optional_fields = ["genres"]

[[attributes]]
name = "mood"
type = "enum"
values = ["calm", "busy"]
'''


def test_textless_items_are_not_sent_to_the_llm_and_get_a_zero_embedding(dataset, tmp_path, monkeypatch):
    import numpy as np

    import engine.extraction
    import engine.semantic.encoders
    from engine.config import load_config
    from engine.data.preprocess import load_dataset
    from engine.knowledge import semantic_table
    from engine.semantic.encoders import TextEncoder

    class RecordingBackend:
        fingerprint = "recording:v1"
        prompts: list[str] = []

        def generate(self, prompts, json_schema, system=""):
            self.prompts.extend(prompts)
            return ['{"mood": "busy"}' for _ in prompts]

        def close(self):
            pass

    class ConstantEncoder(TextEncoder):  # every text, the empty one included, gets a non-zero vector
        name, fingerprint, dim = "constant", "constant:v1", 4

        def _encode_chunk(self, texts, batch_size):
            return np.ones((len(texts), self.dim), dtype=np.float32)

    backend = RecordingBackend()
    monkeypatch.setattr(engine.extraction, "create_backend", lambda *a, **k: backend)
    monkeypatch.setattr(engine.semantic.encoders, "make_encoder", lambda *a, **k: ConstantEncoder())
    lines = (dataset / "items.jsonl").read_text().splitlines()
    (dataset / "items.jsonl").write_text("\n".join(lines[:5]) + "\n")  # i5, i6, i7 have no text
    (tmp_path / "tiny.toml").write_text(TEXTLESS_PROMPT)
    cfg = load_config(
        flags={
            "data.dataset": str(dataset),
            "knowledge.prompt": str(tmp_path / "tiny.toml"),
            "knowledge.embed_text": "attributes",
        }
    )
    ds = load_dataset(cfg.data, cwd=tmp_path)
    textless = ds.textless_items()
    assert sorted(ds.item_ids[i] for i in textless) == ["i5", "i6", "i7"]

    table, info = semantic_table(cfg, ds, tmp_path)
    assert len(backend.prompts) == ds.num_items - 3  # one prompt per described item, none for an empty one
    assert all("Item: Item number" in p for p in backend.prompts)
    assert info["semantic_zero_rows"] == 3
    assert not table[textless].any() and table[[i for i in range(1, ds.num_items + 1) if i not in textless]].all()
