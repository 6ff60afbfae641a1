"""One workspace for paths: with the process somewhere else, --workspace (or KIREC_WORKSPACE, or the config file's
`workspace`) puts runs.db, the checkpoints and the dataset, extraction and embedding caches in one folder; flag >
environment > file; an absolute path stays where it is; a workspace that cannot be a folder is one line, exit 2,
and nothing is created. Datasets are still found from the current folder."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from tests.cli_support import invoke

from tests.data_support import write_generic_dataset
from engine.config import ConfigError, load_config
from engine.workspace import Workspace

SMALL = [
    "--epochs",
    "1",
    "--hidden-size",
    "16",
    "--max-len",
    "10",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--set",
    "train.num_threads=1",
    "--json",
]
ID_RUN = ["run", "--dataset", "../tiny", "--method", "id", *SMALL]  # the dataset relative to the current folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def places(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """(the process's folder, which must stay empty; the tmp folder holding it and the tiny dataset)."""
    for name in ("KIREC_WORKSPACE", "KIREC_DB", "KIREC_DATA"):
        monkeypatch.delenv(name, raising=False)
    write_generic_dataset(tmp_path / "tiny")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return elsewhere, tmp_path


def payload(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def files(folder: Path) -> set[str]:
    """Every file under `folder`, relative, without SQLite's -wal/-shm companions."""
    return {
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def assert_run_files_in(workspace: Path, result: dict, db: str = "runs.db") -> None:
    checkpoint = Path(result["checkpoint"])
    assert checkpoint.parent == workspace / f"{Path(db).stem}.checkpoints" and checkpoint.is_file()
    assert rows(workspace / db, "runs") >= 1
    assert any(name.startswith(".cache/datasets/tiny-") for name in files(workspace))


def test_the_flag_puts_every_file_of_a_kirec_run_in_the_workspace(places):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from engine.extraction.tiny_gguf import write_tiny_gguf

    elsewhere, tmp = places
    model = write_tiny_gguf(tmp / "tiny.gguf")
    # the whole knowledge path on a tiny random GGUF: extraction (cached) and LLM embeddings (cached)
    kirec = [
        "--set",
        "knowledge.encoder=llm",
        "--set",
        f"knowledge.llm_model={model}",
        "--set",
        "knowledge.embed_text=attributes",
        "--no-baseline",
    ]
    result = payload(invoke("run", "--workspace", "../ws", "--dataset", "../tiny", *SMALL, *kirec, cwd=elsewhere))
    workspace = tmp / "ws"  # relative to the current folder, normalised: no ".." in what the run records
    assert_run_files_in(workspace, result)
    assert result["info"]["extracted"] > 0 and result["info"]["embed_encoded"] > 0
    assert rows(workspace / ".cache" / "extractions.sqlite", "extractions") == result["info"]["extracted"]
    assert (
        rows(workspace / ".cache" / "embeddings" / "embeddings.sqlite", "embeddings") == result["info"]["embed_encoded"]
    )
    assert files(elsewhere) == set() and sorted(p.name for p in tmp.iterdir()) == [
        "elsewhere",
        "tiny",
        "tiny.gguf",
        "ws",
    ]

    shown = payload(
        invoke("runs", "show", str(result["run_id"]), "--workspace", str(workspace), "--json", cwd=elsewhere)
    )
    assert shown["config"]["workspace"] == str(workspace)  # the run records where its files are
    # recommend reloads the run from the same workspace: its caches answer, nothing lands in the current folder
    served = invoke(
        "recommend", "--run", str(result["run_id"]), "--user", "u3", "-k", "3", "--workspace", "../ws", cwd=elsewhere
    )
    assert served.exit_code == 0, served.output
    assert files(elsewhere) == set()
    assert rows(workspace / ".cache" / "extractions.sqlite", "extractions") == result["info"]["extracted"]


def test_kirec_extract_and_embed_use_the_workspace_caches(places, monkeypatch):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from engine.extraction.tiny_gguf import write_tiny_gguf

    elsewhere, tmp = places
    model = write_tiny_gguf(tmp / "tiny.gguf")
    extracted = invoke(
        "extract",
        "--dataset",
        "../tiny",
        "--llm-model",
        str(model),
        "--limit",
        "3",
        "--workspace",
        str(tmp / "ws"),
        cwd=elsewhere,
    )
    assert extracted.exit_code == 0, extracted.output
    assert rows(tmp / "ws" / ".cache" / "extractions.sqlite", "extractions") == 3
    monkeypatch.setenv("KIREC_KNOWLEDGE__LLM_MODEL", str(model))  # the LLM encoder's model (kirec embed has no flag)
    embedded = invoke(
        "embed",
        "--dataset",
        "../tiny",
        "--text",
        "raw",
        "--encoder",
        "llm",
        "--export",
        str(tmp / "raw.npy"),
        "--workspace",
        str(tmp / "ws"),
        cwd=elsewhere,
    )
    assert embedded.exit_code == 0, embedded.output
    assert rows(tmp / "ws" / ".cache" / "embeddings" / "embeddings.sqlite", "embeddings") > 0
    assert files(elsewhere) == set()


def test_the_environment_and_the_config_file_name_the_workspace_too(places, monkeypatch):
    elsewhere, tmp = places
    monkeypatch.setenv("KIREC_WORKSPACE", str(tmp / "from-env"))
    assert_run_files_in(tmp / "from-env", payload(invoke(*ID_RUN, cwd=elsewhere)))
    monkeypatch.delenv("KIREC_WORKSPACE")
    config = tmp / "run.toml"
    config.write_text('workspace = "../from-file"\n')  # relative, like every path setting: to the current folder
    assert_run_files_in(tmp / "from-file", payload(invoke(*ID_RUN, "--config", str(config), cwd=elsewhere)))
    assert files(elsewhere) == set()


def test_the_flag_beats_the_environment_which_beats_the_file(places, monkeypatch):
    elsewhere, tmp = places
    config = tmp / "run.toml"
    config.write_text(f'workspace = "{tmp / "file"}"\n')
    monkeypatch.setenv("KIREC_WORKSPACE", str(tmp / "env"))
    payload(invoke(*ID_RUN, "--config", str(config), "--workspace", str(tmp / "flag"), cwd=elsewhere))
    assert (tmp / "flag" / "runs.db").is_file() and not (tmp / "env").exists() and not (tmp / "file").exists()
    payload(invoke(*ID_RUN, "--config", str(config), cwd=elsewhere))
    assert (tmp / "env" / "runs.db").is_file() and not (tmp / "file").exists()
    # the same order through load_config, for every front end
    env = {"KIREC_WORKSPACE": "env"}
    assert load_config(config, env=env, flags={"workspace": "flag"}).workspace == "flag"
    assert load_config(config, env=env).workspace == "env"
    assert load_config(config, env={}).workspace == str(tmp / "file")
    assert load_config(env={}, overrides={"workspace": "set"}).workspace == "set"


def test_an_absolute_path_stays_absolute_and_a_relative_one_is_inside_the_workspace(places):
    elsewhere, tmp = places
    workspace, outside = tmp / "ws", tmp / "outside"
    absolute = payload(invoke(*ID_RUN, "--workspace", str(workspace), "--db", str(outside / "r.db"), cwd=elsewhere))
    assert (outside / "r.db").is_file() and Path(absolute["checkpoint"]).parent == outside / "r.checkpoints"
    assert not (workspace / "r.db").exists() and any(f.startswith(".cache/datasets/") for f in files(workspace))

    relative = payload(
        invoke(
            *ID_RUN,
            "--workspace",
            str(workspace),
            "--db",
            "sub/r.db",
            "--set",
            "data.cache_dir=my-cache",
            "--set",
            "train.checkpoint_dir=ckpt",
            cwd=elsewhere,
        )
    )
    assert (workspace / "sub" / "r.db").is_file() and Path(relative["checkpoint"]).parent == workspace / "ckpt"
    assert any(f.startswith("my-cache/tiny-") for f in files(workspace))
    # runs list reads the same database through the same rule
    listed = invoke("runs", "list", "--workspace", str(workspace), "--db", "sub/r.db", "--json", cwd=elsewhere)
    assert [r["id"] for r in json.loads(listed.stdout)] == [relative["run_id"]]
    assert files(elsewhere) == set()


def test_a_bench_trains_its_cells_in_the_workspace(places):
    elsewhere, tmp = places
    small = [
        "--set",
        "model.hidden_size=16",
        "--set",
        "model.max_len=10",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.device=cpu",
        "--set",
        "train.epochs=1",
        "--set",
        "train.num_threads=1",
    ]
    result = invoke(
        "bench",
        "--methods",
        "id",
        "--datasets",
        "../tiny",
        "--seeds",
        "1",
        *small,
        "--workspace",
        "../ws",
        "--out",
        str(tmp / "results" / "tiny"),
        cwd=elsewhere,
    )
    assert result.exit_code == 0, result.output
    workspace = tmp / "ws"
    assert rows(workspace / "runs.db", "runs") == 1 and files(elsewhere) == set()
    assert any(f.startswith("runs.checkpoints/run-1-") for f in files(workspace))
    assert any(f.startswith(".cache/datasets/tiny-") for f in files(workspace))
    assert "--workspace ../ws" in (tmp / "results" / "tiny.md").read_text()  # the command that made the table


def test_an_interrupted_run_resumes_in_the_workspace(places, monkeypatch):
    from engine.events import EpochEnd
    from engine.pipeline import run_experiment

    elsewhere, tmp = places
    monkeypatch.chdir(elsewhere)
    cfg = load_config(
        env={},
        flags={
            "workspace": "../ws",
            "data.dataset": "../tiny",
            "knowledge.method": "id",
            "train.epochs": 3,
            "train.patience": 100,
            "model.hidden_size": 16,
            "model.max_len": 10,
            "train.batch_size": 32,
            "train.device": "cpu",
            "train.num_threads": 1,
        },
    )
    epochs: list[int] = []
    cut = run_experiment(
        cfg, on_event=lambda e: isinstance(e, EpochEnd) and epochs.append(e.epoch), should_stop=lambda: len(epochs) >= 1
    )
    assert cut.status == "INTERRUPTED"
    resumed = payload(invoke("run", "--resume", str(cut.run_id), "--workspace", "../ws", "--json", cwd=elsewhere))
    assert (resumed["run_id"], resumed["status"]) == (cut.run_id, "FINISHED")
    assert_run_files_in(tmp / "ws", resumed)
    assert files(elsewhere) == set()


def test_a_relative_checkpoint_dir_may_not_leave_the_workspace(places):
    elsewhere, tmp = places
    result = invoke(*ID_RUN, "--workspace", str(tmp / "ws"), "--set", "train.checkpoint_dir=../ckpt", cwd=elsewhere)
    assert result.exit_code == 2 and "outside the workspace" in result.output, result.output
    assert not (tmp / "ckpt").exists()


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ID_RUN,
        ["runs", "list"],
        ["extract", "--dataset", "../tiny"],
        ["item", "i1", "--dataset", "../tiny"],
        ["bench", "--methods", "id", "--datasets", "../tiny"],
    ],
)
def test_a_workspace_that_is_a_file_is_one_line_exit_2_and_creates_nothing(places, command):
    elsewhere, tmp = places
    (tmp / "taken").write_text("a file")
    before = files(tmp)
    result = invoke(*command, "--workspace", str(tmp / "taken"), cwd=elsewhere)
    assert result.exit_code == 2
    assert one_line(result).endswith(f"workspace (--workspace): {tmp / 'taken'} is a file, not a folder")
    under = invoke(*command, "--workspace", str(tmp / "taken" / "ws"), cwd=elsewhere)
    assert under.exit_code == 2 and "cannot be created" in one_line(under)
    assert files(tmp) == before and not any(p.is_dir() for p in elsewhere.iterdir())


def test_a_workspace_from_the_environment_that_is_a_file_is_named(places, monkeypatch):
    elsewhere, tmp = places
    (tmp / "taken").write_text("a file")
    monkeypatch.setenv("KIREC_WORKSPACE", str(tmp / "taken"))
    result = invoke("runs", "list", cwd=elsewhere)
    assert result.exit_code == 2 and "environment KIREC_WORKSPACE (workspace)" in one_line(result)
    with pytest.raises(ConfigError, match="is a file"):
        load_config(env={"KIREC_WORKSPACE": str(tmp / "taken")})


def test_unset_the_workspace_is_the_current_folder_as_before(places):
    elsewhere, _ = places
    assert_run_files_in(elsewhere, payload(invoke(*ID_RUN, cwd=elsewhere)))
    default = Workspace.at(cwd=elsewhere)
    assert (default.db, default.extraction_cache, default.embedding_cache, default.dataset_cache) == (
        elsewhere / "runs.db",
        elsewhere / ".cache" / "extractions.sqlite",
        elsewhere / ".cache" / "embeddings",
        elsewhere / ".cache" / "datasets",
    )


def test_the_cache_settings_place_each_cache(tmp_path):
    cfg = load_config(
        env={
            "KIREC_KNOWLEDGE__EXTRACTION_CACHE": "answers.sqlite",
            "KIREC_KNOWLEDGE__EMBEDDING_CACHE": str(tmp_path / "shared-vectors"),
        },
        flags={"workspace": str(tmp_path / "ws")},
    )
    paths = Workspace.of(cfg)
    assert paths.extraction_cache == tmp_path / "ws" / "answers.sqlite"
    assert paths.embedding_cache == tmp_path / "shared-vectors"


# -- the TUI ------------------------------------------------------------------------------------------------------


def test_kirec_tui_takes_the_workspace_from_its_flag_or_the_environment(tmp_path, monkeypatch):
    from kirec_tui.app import build_app, main

    monkeypatch.chdir(tmp_path)
    app = build_app(["--workspace", "ws"], env={"KIREC_WORKSPACE": str(tmp_path / "env")})
    assert app.db_path == tmp_path / "ws" / "runs.db" and app.workspace.root == tmp_path / "ws"
    assert app.workspace.extraction_cache == tmp_path / "ws" / ".cache" / "extractions.sqlite"
    from_env = build_app(["--db", "x.db"], env={"KIREC_WORKSPACE": str(tmp_path / "env")})
    assert from_env.db_path == tmp_path / "env" / "x.db"

    (tmp_path / "taken").write_text("a file")
    monkeypatch.setattr("sys.argv", ["kirec-tui"])
    with pytest.raises(SystemExit) as exited:
        main(["--workspace", str(tmp_path / "taken")])
    assert exited.value.code == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.anyio
async def test_a_run_from_the_train_screen_writes_in_the_workspace(places, monkeypatch):
    from kirec_tui.app import build_app
    from kirec_tui.screens.train import TrainScreen

    elsewhere, tmp = places
    monkeypatch.chdir(elsewhere)
    app = build_app(["--workspace", str(tmp / "ws")], env={})
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, TrainScreen)
        form = screen.query_one("#train-form")
        form.set_value("dataset", "../tiny")
        form.set_value("epochs", "1")
        form.set_value("device", "cpu")
        form.set_value(
            "extra", "model.hidden_size=16 model.max_len=10 train.batch_size=32 knowledge.method=id train.num_threads=1"
        )
        await pilot.press("ctrl+r")
        await screen.worker.wait()
        assert screen.final_status == "FINISHED", screen.worker.error
    assert_run_files_in(tmp / "ws", {"checkpoint": screen.result.checkpoint})
    assert files(elsewhere) == set()
