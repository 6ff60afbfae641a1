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


def test_run_experiment_validates_a_config_built_in_code_before_touching_the_store(tmp_path):
    """The TUI builds configs too: run_experiment checks them itself, before torch, data or a run row."""
    from engine.pipeline import run_experiment

    cfg = RunConfig(db=str(tmp_path / "runs.db"))
    cfg.knowledge.fusion = "gatee"
    cfg.data.dataset = str(tmp_path / "absent")  # were the check missing, this fails fast, and differently
    with pytest.raises(ConfigError, match=r"^knowledge\.fusion: unknown 'gatee'; did you mean 'gate'\?"):
        run_experiment(cfg, cwd=tmp_path)
    assert not (tmp_path / "runs.db").exists()


def test_only_the_requested_keys_are_read_and_checked():
    from engine.config import resolve_setting

    env = {"KIREC_TRAIN__EPOCHS": "abc", "KIREC_DB": "env.db", "KIREC_DATA": "/d", "KIREC_DATA__MAX_HISTORY": "7"}
    assert resolve_setting("db", env) == "env.db"
    assert resolve_setting("db", env, flag="flag.db") == "flag.db"
    cfg = load_config(env=env, keys=("data",))
    assert cfg.data.data_root == "/d" and cfg.data.max_history == 7
    assert cfg.train == RunConfig().train and cfg.db == RunConfig().db  # not read
    with pytest.raises(ConfigError, match="KIREC_TRAIN__EPOCHS"):
        load_config(env=env)
    with pytest.raises(ConfigError, match=r"KIREC_DATA__MAX_HISTORY \(data.max_history\): must be at least 3"):
        load_config(env={"KIREC_DATA__MAX_HISTORY": "2"}, keys=("data",))


def test_flags_beat_set_overrides_and_each_is_named_as_typed():
    cfg = load_config(flags={"train.epochs": 4}, overrides={"train.epochs": "9", "train.lr": "0.5"})
    assert cfg.train.epochs == 4 and cfg.train.lr == 0.5
    with pytest.raises(ConfigError, match=r"^train\.lr \(--lr\): must be a positive finite number"):
        load_config(flags={"train.lr": 0.0}, overrides={"train.lr": "0.5"})
    with pytest.raises(ConfigError, match=r"^--set train\.lr: must be a positive finite number"):
        load_config(overrides={"train.lr": "-1"})


def test_a_recorded_config_loads_without_the_rules():
    """A run stored by an older version (eval.ks without 10, say) must still open for `kirec recommend`."""
    cfg = RunConfig.from_dict({"eval": {"ks": [5]}})
    assert cfg.eval.ks == [5]


def test_the_sampled_protocol_needs_fewer_negatives_than_items():
    from engine.config import validate_for_dataset

    cfg = load_config(flags={"eval.protocol": "sampled", "eval.num_sampled": 100})
    validate_for_dataset(cfg, num_items=101)
    with pytest.raises(ConfigError, match=r"eval\.num_sampled: 100 negatives .* only 100 items"):
        validate_for_dataset(cfg, num_items=100)
    validate_for_dataset(load_config(), num_items=5)  # the full protocol draws none


def test_the_loss_names_have_one_source():
    from engine.choices import LOSS_CHOICES
    from engine.models.losses import LOSSES

    assert LOSSES is LOSS_CHOICES


def test_a_prompt_file_that_does_not_parse_fails_at_load(tmp_path):
    bad = tmp_path / "mine.toml"
    bad.write_text('name = "mine"\ntemplate = "Item: {title"\n[[attributes]]\nname = "a"\ntype = "string"\n')
    with pytest.raises(ConfigError, match=rf"^knowledge\.prompt \(--prompt\): {bad}: template"):
        load_config(flags={"knowledge.prompt": str(bad)})
    assert load_config(flags={"knowledge.prompt": "movies"}).knowledge.prompt == "movies"
