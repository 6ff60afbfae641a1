"""Properties of the config parser and validator (engine/config.py), checked on generated input with hypothesis:
a valid config survives every source unchanged, any input gives a config or one ConfigError (never another
exception), every broken rule names its field, and a near-miss key or choice gets the right did-you-mean."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import choices
from engine.config import ConfigError, RunConfig, config_keys, load_config, read_config_file, validate_config

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
finite_positive = st.floats(min_value=1e-9, max_value=1e3, allow_nan=False, allow_infinity=False)

# A valid value for each of these fields; together they cover every type the config declares.
VALID = {
    "name": names,
    "db": names.filter(lambda s: s.strip()),
    "data.min_user_interactions": st.integers(0, 50),
    "data.max_history": st.none() | st.integers(3, 500),
    "data.rating_threshold": st.none() | st.floats(-10, 10, allow_nan=False),
    "model.backbone": st.sampled_from(choices.BACKBONE_CHOICES),
    "model.num_heads": st.just(2),
    "model.hidden_size": st.integers(1, 64).map(lambda n: 2 * n),
    "model.dropout": st.floats(0.0, 0.999, allow_nan=False),
    "model.max_len": st.integers(1, 400),
    "train.epochs": st.integers(1, 10_000),
    "train.batch_size": st.integers(1, 4096),
    "train.lr": finite_positive,
    "train.loss": st.sampled_from(choices.LOSS_CHOICES),
    "train.device": st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:3"]),
    "train.amp": st.booleans(),
    "train.num_threads": st.none() | st.integers(1, 64),
    "train.max_train_seconds": st.none() | finite_positive,
    "eval.ks": st.lists(st.integers(1, 100), max_size=4).map(lambda ks: sorted(set(ks) | {10})),
    "eval.protocol": st.sampled_from(choices.PROTOCOL_CHOICES),
    "knowledge.method": st.sampled_from(choices.METHOD_CHOICES),
    "knowledge.fusion": st.sampled_from(choices.FUSION_CHOICES),
    "knowledge.reduction": st.sampled_from(choices.REDUCTION_CHOICES),
    "knowledge.encoder": st.sampled_from(choices.ENCODER_CHOICES),
    "knowledge.embed_text": st.sampled_from(choices.EMBED_TEXT_CHOICES),
    "knowledge.semantic_norm": finite_positive,
    "knowledge.distill_weight": st.floats(0.0, 10.0, allow_nan=False),
    "knowledge.similar_users": st.integers(1, 100),
}
valid_values = st.fixed_dictionaries({}, optional=VALID)


def get(cfg: RunConfig, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, list)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string for these characters


def toml_text(values: dict) -> str:
    """A TOML file from dotted keys; None values are left out (TOML has no null, and the default is None)."""
    top = [f"{k} = {toml_value(v)}" for k, v in values.items() if "." not in k and v is not None]
    sections: dict[str, list[str]] = {}
    for key, value in values.items():
        if "." in key and value is not None:
            section, field = key.split(".")
            sections.setdefault(section, []).append(f"{field} = {toml_value(value)}")
    parts = top + [f"[{s}]\n" + "\n".join(lines) for s, lines in sections.items()]
    return "\n".join(parts) + "\n"


def env_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return repr(value) if isinstance(value, float) else str(value)


@SETTINGS
@given(valid_values)
def test_a_valid_config_reads_back_the_same_from_a_file_the_environment_and_flags(values):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_text(toml_text(values), encoding="utf-8")
        from_file = load_config(path)
    from_flags = load_config(flags=values)
    env_values = {k: v for k, v in values.items() if k != "name" and not (isinstance(v, str) and v != v.strip())}
    from_env = load_config(
        env={f"KIREC_{k.replace('.', '__').upper()}": env_text(v) for k, v in env_values.items() if "." in k}
    )
    for key, value in values.items():
        if value is not None:
            assert get(from_file, key) == value, key
        assert get(from_flags, key) == value, key
    for key, value in env_values.items():
        if "." in key:
            assert get(from_env, key) == value, key
    assert validate_config(from_file) is from_file


def test_the_defaults_are_valid():
    assert validate_config(RunConfig()) == RunConfig()


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)
keys = st.sampled_from(config_keys()) | st.text(max_size=15) | st.sampled_from(["model", "train.lr.x", "train."])


@SETTINGS
@given(st.dictionaries(keys, anything, max_size=4))
def test_any_override_gives_a_valid_config_or_one_config_error_naming_its_source(overrides):
    try:
        cfg = load_config(overrides=overrides)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert any(message.startswith(f"--set {k.strip()}") for k in overrides) or message.startswith("--set")
    else:
        validate_config(cfg)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_as_a_config_file_give_a_mapping_or_one_config_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_bytes(data)
        try:
            assert isinstance(read_config_file(path), dict)
        except ConfigError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)


not_positive_int = st.integers(max_value=0)
BAD = {
    "model.hidden_size": not_positive_int,
    "model.num_layers": not_positive_int,
    "model.num_heads": not_positive_int,
    "model.max_len": not_positive_int,
    "model.dropout": st.floats(1.0) | st.floats(max_value=-1e-12) | st.just(math.nan),
    "train.epochs": not_positive_int,
    "train.batch_size": not_positive_int,
    "train.patience": not_positive_int,
    "train.num_negatives": not_positive_int,
    "train.lr": st.floats(max_value=0.0) | st.sampled_from([math.nan, math.inf]),
    "train.weight_decay": st.floats(max_value=-1e-12) | st.sampled_from([math.nan, math.inf]),
    "train.max_train_seconds": st.floats(max_value=0.0) | st.just(math.inf),
    "train.num_threads": not_positive_int,
    "train.seed": st.integers(max_value=-1),
    "train.device": st.text(max_size=8).filter(
        lambda s: s.strip().lower() not in ("auto", "cpu", "cuda") and not s.strip().lower().startswith("cuda:")
    ),
    "eval.ks": st.lists(st.integers(1, 100).filter(lambda k: k != 10), min_size=1, max_size=3)
    | st.lists(st.integers(max_value=0), min_size=1, max_size=2).map(lambda ks: ks + [10]),
    "eval.num_sampled": not_positive_int,
    "eval.batch_size": not_positive_int,
    "data.min_item_interactions": st.integers(max_value=-1),
    "data.max_history": st.integers(max_value=2),
    "knowledge.semantic_norm": st.floats(max_value=0.0) | st.just(math.nan),
    "knowledge.distill_weight": st.floats(max_value=-1e-12) | st.sampled_from([math.nan, math.inf]),
    "knowledge.similar_users": not_positive_int,
}


@SETTINGS
@given(st.sampled_from(sorted(BAD)).flatmap(lambda key: st.tuples(st.just(key), BAD[key])))
def test_a_broken_rule_is_rejected_naming_its_field(case):
    key, value = case
    with pytest.raises(ConfigError) as info:
        load_config(overrides={key: value})
    assert str(info.value).startswith(f"--set {key}: ")


CHOICE_FIELDS = {
    "model.backbone": choices.BACKBONE_CHOICES,
    "train.loss": choices.LOSS_CHOICES,
    "eval.protocol": choices.PROTOCOL_CHOICES,
    "knowledge.method": choices.METHOD_CHOICES,
    "knowledge.fusion": choices.FUSION_CHOICES,
    "knowledge.reduction": choices.REDUCTION_CHOICES,
    "knowledge.extractor": choices.EXTRACTOR_CHOICES,
    "knowledge.encoder": choices.ENCODER_CHOICES,
    "knowledge.embed_text": choices.EMBED_TEXT_CHOICES,
}


def one_edit(word: str) -> st.SearchStrategy[str]:
    """The word with one character dropped, doubled or appended."""
    positions = st.integers(0, len(word) - 1)
    return st.one_of(
        positions.map(lambda i: word[:i] + word[i + 1 :]),
        positions.map(lambda i: word[:i] + word[i] + word[i:]),
        st.sampled_from("xyz").map(lambda c: word + c),
    )


@SETTINGS
@given(
    st.sampled_from(sorted(CHOICE_FIELDS)).flatmap(
        lambda key: st.sampled_from([c for c in CHOICE_FIELDS[key] if len(c) >= 4]).flatmap(
            lambda choice: st.tuples(st.just(key), st.just(choice), one_edit(choice))
        )
    )
)
def test_a_near_miss_choice_is_rejected_with_a_did_you_mean(case):
    key, choice, typo = case
    assume(typo not in CHOICE_FIELDS[key] and typo.lower() not in CHOICE_FIELDS[key])
    with pytest.raises(ConfigError) as info:
        load_config(overrides={key: typo})
    message = str(info.value)
    assert message.startswith(f"--set {key}: unknown '{typo.lower() if key == 'model.backbone' else typo}'")
    suggested = message.split("did you mean '")[1].split("'")[0]
    assert suggested in CHOICE_FIELDS[key]


@SETTINGS
@given(
    st.sampled_from([k for k in config_keys() if len(k.split(".")[-1]) >= 4]).flatmap(
        lambda key: st.tuples(st.just(key), one_edit(key.split(".")[-1]))
    )
)
def test_a_near_miss_key_is_rejected_with_a_did_you_mean(case):
    key, field_typo = case
    typo = ".".join(key.split(".")[:-1] + [field_typo])
    assume(typo not in config_keys())
    with pytest.raises(ConfigError) as info:
        load_config(overrides={typo: "1"})
    message = str(info.value)
    assert message.startswith(f"--set {typo}: unknown config field; did you mean '")
    assert message.split("did you mean '")[1].split("'")[0] in config_keys()
