import pytest

from engine.config import ConfigError, RunConfig, load_config


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('db = "file.db"\n[train]\nepochs = 3\nlr = 0.01\nseed = 5\n[model]\nbackbone = "gru4rec"\n')
    env = {"KIREC_TRAIN__EPOCHS": "4", "KIREC_DB": "env.db", "UNRELATED": "x"}
    cfg = load_config(path, env=env, flags={"train.epochs": 9, "train.seed": None})
    assert cfg.train.epochs == 9  # flag beats env and file
    assert cfg.db == "env.db"  # env beats file
    assert cfg.train.lr == 0.01 and cfg.model.backbone == "gru4rec"  # file beats defaults
    assert cfg.train.seed == 5  # an unset flag (None) does not override
    assert cfg.train.batch_size == RunConfig().train.batch_size


def test_env_values_are_coerced_to_field_types():
    cfg = load_config(env={"KIREC_EVAL__KS": "1,10", "KIREC_EVAL__EXCLUDE_HISTORY": "false", "KIREC_DATA": "/d"})
    assert cfg.eval.ks == [1, 10] and cfg.eval.exclude_history is False and cfg.data.data_root == "/d"


@pytest.mark.parametrize(
    "content, needle",
    [
        ("[train]\nepochs = 'many'\n", "train.epochs"),
        ("[train]\nepocs = 3\n", "train.epocs"),
        ("[nosuch]\nx = 1\n", "nosuch"),
        ("[train\n", "invalid TOML"),
    ],
)
def test_bad_config_file_names_file_and_field(tmp_path, content, needle):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_round_trip_through_dict():
    cfg = load_config(flags={"model.hidden_size": 32, "knowledge.method": "kirec"})
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg
