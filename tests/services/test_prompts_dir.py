"""knowledge.prompts_dir (`--prompts-dir`): the folder `kirec run` and `kirec extract` take their prompt from,
validated at load, by the one precedence order (flag > environment > config file > default)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from tests.cli_support import invoke

from engine.config import ConfigError, load_config
from engine.extraction.prompts import PROMPTS_DIR, default_prompt_for
from engine.store import open_store

SPECIAL = '''name = "tiny-special"
datasets = ["tiny"]
template = """Say how the item feels.
{schema}
Item: {title}"""

[[attributes]]
name = "mood"
type = "enum"
values = ["calm", "busy"]
description = "tone"
'''


class MoodBackend:
    """A stand-in LLM: answers every prompt at once (two moods, so the items' vectors differ), and remembers
    what it was asked."""

    fingerprint = "mood-backend:v1"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, prompts: list[str], json_schema: dict, system: str = "") -> list[str]:
        self.prompts += prompts
        return [json.dumps({"mood": "calm" if len(p) % 2 else "busy"}) for p in prompts]

    def close(self) -> None:
        pass


@pytest.fixture
def special_prompts(tmp_path):
    folder = tmp_path / "my-prompts"
    folder.mkdir()
    (folder / "special.toml").write_text(SPECIAL)
    return folder


@pytest.fixture
def mood_backend(monkeypatch):
    import engine.extraction

    backend = MoodBackend()
    monkeypatch.setattr(engine.extraction, "create_backend", lambda *args, **kwargs: backend)
    return backend


def special_hash() -> str:
    return hashlib.sha256(SPECIAL.encode()).hexdigest()


def test_the_setting_follows_the_precedence_order_and_is_checked_at_load(tmp_path, special_prompts):
    file = tmp_path / "c.toml"
    file.write_text(f'[knowledge]\nprompts_dir = "{tmp_path / "from-file"}"\n')
    (tmp_path / "from-file").mkdir()
    env = {"KIREC_KNOWLEDGE__PROMPTS_DIR": str(special_prompts)}
    assert load_config().knowledge.prompts_dir is None
    assert load_config(file).knowledge.prompts_dir == str(tmp_path / "from-file")
    assert load_config(file, env=env).knowledge.prompts_dir == str(special_prompts)
    flag = load_config(file, env=env, flags={"knowledge.prompts_dir": str(tmp_path / "from-file")})
    assert flag.knowledge.prompts_dir == str(tmp_path / "from-file")
    with pytest.raises(ConfigError, match=r"^knowledge\.prompts_dir \(--prompts-dir\): .*absent: no such folder$"):
        load_config(flags={"knowledge.prompts_dir": str(tmp_path / "absent")})
    with pytest.raises(ConfigError, match=r"is a file, not a folder of prompt files"):
        load_config(env={"KIREC_KNOWLEDGE__PROMPTS_DIR": str(file)})
    # a prompt name is looked up in the folder: "special" exists only there
    assert load_config(flags={"knowledge.prompt": "special", "knowledge.prompts_dir": str(special_prompts)})
    with pytest.raises(ConfigError, match=r"special: no such prompt file or name in .*prompts"):
        load_config(flags={"knowledge.prompt": "special"})


def test_kirec_run_records_the_hash_of_the_prompt_in_its_prompts_dir(
    tmp_path, tiny_dataset, special_prompts, mood_backend
):
    repository_default = default_prompt_for("tiny", PROMPTS_DIR)
    assert repository_default.content_hash != special_hash()
    args = ["run", "--dataset", str(tiny_dataset), "--epochs", "1", "--device", "cpu", "--no-baseline", "--json"]
    small = ["model.hidden_size=16", "model.max_len=10", "train.batch_size=32", "knowledge.embed_text=attributes"]
    for pair in small:
        args += ["--set", pair]
    result = invoke(*args, "--prompts-dir", str(special_prompts), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    with open_store(tmp_path / "runs.db") as store:
        run = store.get_run(run_id)
    assert run.params["knowledge.prompt"] == "tiny-special"
    assert run.params["knowledge.prompt_hash"] == special_hash()
    assert run.config["knowledge"]["prompts_dir"] == str(special_prompts)
    assert mood_backend.prompts and all(p.startswith("Say how the item feels.") for p in mood_backend.prompts)


def test_kirec_extract_takes_its_prompt_from_the_prompts_dir(tmp_path, tiny_dataset, special_prompts, mood_backend):
    result = invoke(
        "extract", "--dataset", str(tiny_dataset), "--limit", "3", "--prompts-dir", str(special_prompts), cwd=tmp_path
    )
    assert result.exit_code == 0, result.output
    assert re.search(rf"^tiny / tiny-special \({special_hash()[:12]}\): 3 extracted", result.stdout, re.MULTILINE)
    bad = invoke("extract", "--dataset", str(tiny_dataset), "--prompts-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert bad.exit_code == 2 and "no such folder" in bad.output and "Traceback" not in bad.output


def test_the_flag_is_in_the_help_of_run_and_extract(tmp_path):
    for command in ("run", "extract"):
        shown = "".join(invoke(command, "--help", cwd=tmp_path).output.replace("│", " ").split())  # rich wraps
        assert "--prompts-dir<str>Folderofpromptfiles" in shown and "repository'sprompts/" in shown


def test_a_run_recorded_before_the_setting_existed_still_answers_a_bench_cell():
    """Stored configs lack fields added later; they count at their default, so the bench does not rerun."""
    from engine.bench.identity import config_identity
    from engine.config import RunConfig

    stored = RunConfig().to_dict()
    del stored["knowledge"]["prompts_dir"]
    assert config_identity(stored) == config_identity(RunConfig().to_dict())
    moved = RunConfig()
    moved.knowledge.prompts_dir = "/elsewhere"
    assert config_identity(moved.to_dict()) != config_identity(stored)
