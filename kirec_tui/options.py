"""Every run setting a front end offers, declared once: its dotted config key, its CLI flag, its help (the
choices come from the engine's own lists) and, for the settings people change most, its Train-form label.
The Typer options of `kirec run / extract / embed` and the Train form's fields are both made from this table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer

from engine.choices import (
    BACKBONE_CHOICES,
    EMBED_TEXT_CHOICES,
    ENCODER_CHOICES,
    EXTRACTOR_CHOICES,
    FUSION_CHOICES,
    LOSS_CHOICES,
    METHOD_CHOICES,
    PROTOCOL_CHOICES,
    REDUCTION_CHOICES,
)

FORM_DEVICES = ("auto", "cpu", "cuda")  # the Train form's list; the engine validates any device spec


@dataclass(frozen=True)
class Setting:
    key: str  # dotted config key
    param: str  # the CLI parameter (and Train form widget) name; the flag is --param-with-dashes
    help: str
    kind: type = str
    choices: tuple[str, ...] | None = None  # listed in the help (and offered by the form)
    form_label: str | None = None  # shown in the Train form when set
    flag_names: tuple[str, ...] = ()  # explicit flags, when not --param-with-dashes

    def help_text(self) -> str:
        return f"{self.help.rstrip('.')}: {' | '.join(self.choices)}." if self.choices else self.help


SETTINGS: tuple[Setting, ...] = (
    Setting("name", "name", "A name for the run.", form_label="run name"),
    Setting("data.dataset", "dataset", "Dataset name or folder.", form_label="dataset"),
    Setting("model.backbone", "backbone", "Sequential backbone.", choices=BACKBONE_CHOICES, form_label="backbone"),
    Setting("knowledge.method", "method", "How knowledge is used.", choices=METHOD_CHOICES, form_label="method"),
    Setting(
        "knowledge.fusion",
        "fusion",
        "ID + semantic fusion (method kirec).",
        choices=FUSION_CHOICES,
        form_label="fusion",
    ),
    Setting(
        "knowledge.reduction",
        "reduction",
        "Semantic vectors to the model's size.",
        choices=REDUCTION_CHOICES,
        form_label="reduction",
    ),
    Setting(
        "knowledge.prompt",
        "prompt",
        "Extraction prompt file, or a name in --prompts-dir (default: the dataset's).",
        form_label="prompt",
    ),
    Setting(
        "knowledge.prompts_dir",
        "prompts_dir",
        "Folder of prompt files: where --prompt names and each dataset's default prompt are found "
        "(default: the repository's prompts/).",
    ),
    Setting("knowledge.extractor", "extractor", "LLM backend of the extraction.", choices=EXTRACTOR_CHOICES),
    Setting("knowledge.llm_model", "llm_model", "GGUF path, model folder or server model name."),
    Setting("knowledge.llm_url", "llm_url", "OpenAI-compatible server base URL."),
    Setting(
        "knowledge.llm_concurrency", "llm_concurrency", "Requests in flight at once to --llm-url's server.", kind=int
    ),
    Setting("knowledge.embed_text", "text", "What is embedded.", choices=EMBED_TEXT_CHOICES),
    Setting("knowledge.encoder", "encoder", "Text encoder.", choices=ENCODER_CHOICES),
    Setting("train.epochs", "epochs", "Maximum training epochs.", kind=int, form_label="epochs"),
    Setting("train.seed", "seed", "Random seed.", kind=int, form_label="seed"),
    Setting("train.loss", "loss", "Training loss.", choices=LOSS_CHOICES),
    Setting("train.batch_size", "batch_size", "Training batch size.", kind=int),
    Setting("train.lr", "lr", "Learning rate.", kind=float),
    Setting("model.hidden_size", "hidden_size", "Embedding / hidden size.", kind=int),
    Setting("model.max_len", "max_len", "Maximum sequence length.", kind=int),
    Setting("train.patience", "patience", "Early-stopping patience in epochs.", kind=int),
    Setting("train.device", "device", "Training device: auto | cpu | cuda | cuda:N.", form_label="device"),
    Setting("db", "db", "Runs database (default runs.db in the workspace, or KIREC_DB)."),
    Setting(
        "workspace",
        "workspace",
        "Folder holding runs.db, the checkpoints and the caches (default: the current folder, or KIREC_WORKSPACE).",
    ),
    Setting("data.data_root", "data_root", "Folder holding the datasets (or KIREC_DATA)."),
    Setting(
        "eval.exclude_history",
        "exclude_history",
        "Rank items already in the history?",
        kind=bool,
        flag_names=("--exclude-history/--include-history",),
    ),
    Setting(
        "eval.protocol",
        "protocol",
        "Evaluation protocol: full is primary, sampled ranks 1 + 100 negatives.",
        choices=PROTOCOL_CHOICES,
    ),
)
BY_PARAM = {s.param: s for s in SETTINGS}
BY_KEY = {s.key: s for s in SETTINGS}
assert len(BY_PARAM) == len(SETTINGS) == len(BY_KEY), "one declaration per setting"


def option(param: str) -> Any:
    """The Typer annotation of a declared setting's flag, e.g. `fusion: option("fusion") = None`; unset
    flags stay None so that the environment, the config file and the defaults decide."""
    setting = BY_PARAM[param]
    names = setting.flag_names or (f"--{param.replace('_', '-')}",)
    return Annotated[Optional[setting.kind], typer.Option(*names, help=setting.help_text())]


def flags_of(values: dict[str, Any], params: tuple[str, ...]) -> dict[str, Any]:
    """{dotted key: value} of the declared settings among a command's parameters (None where not typed)."""
    return {BY_PARAM[p].key: values[p] for p in params}


FORM_SETTINGS = tuple(s for s in SETTINGS if s.form_label)
