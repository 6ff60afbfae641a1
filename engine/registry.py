"""Every named implementation a run can choose, in one torch-free table: the name, a one-line help string and
the dotted path of what implements it (imported only when a run asks for it).

The config validates against these names, the front ends take their choices and help strings from here
(`choices`, `help_for`, `describe`) without importing torch, and the engine builds what a name stands for with
`load(kind, name)`. An implementation is found through its entry, never by a string compared in an if-chain, so
a name that is listed but not handled cannot exist: tests/unit/test_registry.py loads every entry and checks that
every implementation module (each engine/methods/*.py, each fusion and reduction class) has one.

Adding a fusion, reduction, method, loss or backbone: write its class (or function), add one line below.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    help: str
    target: str  # "package.module:attribute"
    group: str = ""  # a sub-kind some callers select by (reductions: "fixed" or "adapter")

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


# kind -> the config field that names it (for messages); None where no config field does
FIELDS: Mapping[str, str | None] = MappingProxyType(
    {
        "backbone": "model.backbone",
        "method": "knowledge.method",
        "fusion": "knowledge.fusion",
        "reduction": "knowledge.reduction",
        "loss": "train.loss",
        "encoder": "knowledge.encoder",
        "extractor": "knowledge.extractor",
        "embed_text": "knowledge.embed_text",
        "protocol": "eval.protocol",
        "lr_schedule": "train.lr_schedule",
        "dataset_format": None,
        "answer_format": None,  # a prompt file's `answer_format`
    }
)

_ENTRIES: tuple[Entry, ...] = (
    Entry("backbone", "sasrec", "SASRec: causal self-attention over the history", "engine.models.sasrec:SASRec"),
    Entry("backbone", "gru4rec", "GRU4Rec: a recurrent (GRU) encoder of the history", "engine.models.gru4rec:GRU4Rec"),
    Entry(
        "backbone",
        "bert4rec",
        "BERT4Rec: bidirectional self-attention trained on masked items",
        "engine.models.bert4rec:BERT4Rec",
    ),
    Entry(
        "method",
        "id",
        "the plain baseline: one learned ID embedding per item, no LLM knowledge",
        "engine.methods.id:IdMethod",
    ),
    Entry(
        "method",
        "kirec",
        "ID embedding fused with the item's reduced LLM-derived semantic vector",
        "engine.methods.kirec:KirecMethod",
    ),
    Entry(
        "method",
        "init",
        "ID table initialised from the reduced semantic vectors (LLMInit), then trained",
        "engine.methods.init:InitMethod",
    ),
    Entry(
        "method",
        "semantic-only",
        "no ID table: items are their reduced or adapted semantic vectors (LLMEmb)",
        "engine.methods.semantic_only:SemanticOnlyMethod",
    ),
    Entry(
        "method",
        "unisrec",
        "UniSRec: ID embedding + a mixture-of-whitening-experts adapter over the frozen text "
        "vectors, cosine scores / temperature",
        "engine.methods.unisrec:UniSRecMethod",
    ),
    Entry(
        "method",
        "llm-esr",
        "LLM-ESR: semantic (adapter) and PCA-initialised ID views, cross-attention, one "
        "shared SASRec, self-distillation toward similar users",
        "engine.methods.llm_esr:LlmEsrMethod",
    ),
    Entry("fusion", "add", "id + semantic (optionally layer-normalised)", "engine.semantic.fusion:AddFusion"),
    Entry("fusion", "concat", "Linear([id; semantic]) back to the hidden size", "engine.semantic.fusion:ConcatFusion"),
    Entry(
        "fusion",
        "gate",
        "per-dimension gate g = sigmoid(W[id; semantic]): g*id + (1-g)*semantic",
        "engine.semantic.fusion:GateFusion",
    ),
    Entry(
        "fusion",
        "gated-add",
        "the whole ID vector plus a gated semantic one: id + g*semantic",
        "engine.semantic.fusion:GatedAddFusion",
    ),
    Entry(
        "reduction",
        "pca",
        "PCA to the hidden size, fitted once before training",
        "engine.semantic.reduction:PCA",
        "fixed",
    ),
    Entry(
        "reduction",
        "pca-whiten",
        "whitened PCA (unit variance per component), fitted once",
        "engine.semantic.reduction:WhitenedPCA",
        "fixed",
    ),
    Entry(
        "reduction",
        "random",
        "a seeded Gaussian projection (Johnson-Lindenstrauss), fixed",
        "engine.semantic.reduction:RandomProjection",
        "fixed",
    ),
    Entry(
        "reduction",
        "adapter-linear",
        "a Linear adapter trained with the model over the frozen table",
        "engine.semantic.adapters:LinearAdapter",
        "adapter",
    ),
    Entry(
        "reduction",
        "adapter-mlp",
        "a two-layer MLP adapter trained with the model over the frozen table",
        "engine.semantic.adapters:MLPAdapter",
        "adapter",
    ),
    Entry("loss", "ce", "full softmax cross-entropy over every item", "engine.models.losses:full_cross_entropy"),
    Entry("lr_schedule", "constant", "train.lr throughout (after any warm-up)", "engine.training.schedules:constant"),
    Entry(
        "lr_schedule",
        "cosine",
        "train.lr decayed to 0 at train.epochs along half a cosine (after any warm-up)",
        "engine.training.schedules:cosine",
    ),
    Entry(
        "loss",
        "bce",
        "binary cross-entropy: each positive against num_negatives uniform negatives",
        "engine.models.losses:binary_cross_entropy",
    ),
    Entry(
        "loss",
        "sampled-softmax",
        "softmax over the positive and 100 x num_negatives shared negatives",
        "engine.models.losses:sampled_softmax",
    ),
    Entry(
        "encoder",
        "minilm",
        "all-MiniLM-L6-v2 sentence embeddings (384 dims)",
        "engine.semantic.encoders:minilm_encoder",
    ),
    Entry(
        "encoder",
        "llm",
        "the LLM's mean-pooled hidden states (a .gguf or a model folder; default SmolLM2)",
        "engine.semantic.encoders:llm_encoder",
    ),
    Entry(
        "extractor",
        "llama-cpp",
        "a local GGUF model through llama.cpp (default SmolLM2)",
        "engine.extraction.backends:llama_cpp_backend",
    ),
    Entry(
        "extractor",
        "transformers",
        "a local model through Hugging Face transformers",
        "engine.extraction.backends:transformers_backend",
    ),
    Entry(
        "extractor",
        "openai",
        "an OpenAI-compatible server (knowledge.llm_url, knowledge.llm_model)",
        "engine.extraction.backends:openai_backend",
    ),
    Entry(
        "embed_text",
        "attributes",
        "embed the LLM's extracted attributes (raw text where it gave none)",
        "engine.semantic.texts:item_texts",
    ),
    Entry(
        "embed_text",
        "raw",
        "embed the item's own text (title, genres, ...); no extraction",
        "engine.semantic.texts:item_texts",
    ),
    Entry(
        "embed_text",
        "both",
        "embed the item's text followed by its extracted attributes",
        "engine.semantic.texts:item_texts",
    ),
    Entry("protocol", "full", "rank every item (the default)", "engine.evaluation.evaluator:RankingEvaluator"),
    Entry(
        "protocol",
        "sampled",
        "rank the positive among eval.num_sampled sampled negatives (for papers)",
        "engine.evaluation.evaluator:RankingEvaluator",
    ),
    Entry(
        "answer_format",
        "json",
        "the answer as one compact JSON object",
        "engine.extraction.answer_formats:JSON",
    ),
    Entry(
        "answer_format",
        "lines",
        "the values alone, '|' between attributes and ',' between list items (a third fewer tokens)",
        "engine.extraction.answer_formats:LINES",
    ),
    # Detection order of a folder outside the dataset registry: the first whose interactions file exists wins.
    Entry(
        "dataset_format",
        "movielens-csv",
        "GroupLens CSV: ratings.csv, movies.csv, tags.csv",
        "engine.data.formats.movielens:CSV",
    ),
    Entry(
        "dataset_format",
        "movielens-dat",
        "GroupLens ML-1M: ratings.dat, movies.dat ('::'-separated, latin-1)",
        "engine.data.formats.movielens:DAT",
    ),
    Entry(
        "dataset_format",
        "movielens-100k",
        "GroupLens ML-100K: u.data, u.item, u.genre",
        "engine.data.formats.movielens:ML_100K",
    ),
    Entry(
        "dataset_format",
        "recbole-atomic",
        "RecBole atomic files: <name>.inter, <name>.item",
        "engine.data.formats.recbole:ATOMIC",
    ),
    Entry(
        "dataset_format",
        "amazon-sequence",
        "Amazon 2014 sequences: user_sequence.txt, items.jsonl",
        "engine.data.formats.amazon:SEQUENCE",
    ),
    Entry(
        "dataset_format",
        "amazon-raw",
        "Amazon 2014 raw: reviews_<Category>_5.json.gz, meta_<Category>.json.gz",
        "engine.data.formats.amazon:RAW",
    ),
    Entry(
        "dataset_format",
        "generic",
        "kirec generic: interactions.csv or .tsv, optional items.jsonl",
        "engine.data.formats.generic:GENERIC",
    ),
)

_BY_KIND: dict[str, dict[str, Entry]] = {kind: {} for kind in FIELDS}
for _entry in _ENTRIES:
    assert _entry.name not in _BY_KIND[_entry.kind], f"registry: {_entry.kind} '{_entry.name}' is listed twice"
    _BY_KIND[_entry.kind][_entry.name] = _entry
del _entry

KINDS: tuple[str, ...] = tuple(FIELDS)


def _kind(kind: str) -> dict[str, Entry]:
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise KeyError(f"registry: no kind '{kind}' (kinds: {', '.join(KINDS)})") from None


def choices(kind: str, group: str | None = None) -> tuple[str, ...]:
    """The names of a kind in their listed order (the first is not necessarily the config's default);
    with `group`, only that sub-kind's (reductions: "fixed", "adapter")."""
    return tuple(name for name, e in _kind(kind).items() if group is None or e.group == group)


def help_for(kind: str) -> dict[str, str]:
    """name -> one-line help, in listed order: for --help texts and the Train form's option descriptions."""
    return {name: e.help for name, e in _kind(kind).items()}


def describe(kind: str) -> str:
    """All of a kind's choices with their help, on one line: "a: help; b: help"."""
    return "; ".join(f"{name}: {text}" for name, text in help_for(kind).items())


def entries(kind: str | None = None) -> tuple[Entry, ...]:
    return tuple(e for e in _ENTRIES if kind is None or e.kind == kind)


def unknown_message(kind: str, name: str) -> str:
    """ "unknown 'x'; did you mean 'y'? (choose: ...)": the one wording of an unregistered name."""
    names = choices(kind)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown '{name}'{hint} (choose: {', '.join(names)})"


def entry(kind: str, name: str) -> Entry:
    """The entry of `name`; an unknown name raises ConfigError naming the config field (exit 2 in the CLI)."""
    found = _kind(kind).get(name)
    if found is None:
        from engine.config import ConfigError  # here, not at the top: engine.config imports this module's names

        field = FIELDS[kind] or kind.replace("_", " ")
        raise ConfigError(f"{field}: {unknown_message(kind, name)}")
    return found


def load(kind: str, name: str) -> Any:
    """What implements `name` (a class or a factory function), imported now."""
    return entry(kind, name).load()
