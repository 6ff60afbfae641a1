"""The registry of named implementations: every name resolves to what implements it, every implementation has a
name, the choices the config and the front ends offer are the registry's, and it stays torch-free."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine import choices, registry
from engine.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", registry.entries(), ids=lambda e: f"{e.kind}:{e.name}")
def test_every_registered_name_resolves_to_an_implementation(entry):
    implementation = entry.load()
    if entry.kind == "dataset_format":  # a format module's declaration: its loader, files and detection
        from engine.data.formats.spec import FormatSpec

        assert isinstance(implementation, FormatSpec) and callable(implementation.load)
    elif entry.kind == "answer_format":  # a wire format: its grammar, completeness check and conversion to JSON
        from engine.extraction.answer_formats import AnswerFormat

        assert isinstance(implementation, AnswerFormat) and implementation.name == entry.name
        assert callable(implementation.grammar) and callable(implementation.to_json)
    else:
        assert callable(implementation)
    assert entry.help.strip() and "\n" not in entry.help


def test_the_choices_tuples_are_the_registrys():
    assert choices.BACKBONE_CHOICES == registry.choices("backbone") == ("sasrec", "gru4rec", "bert4rec")
    assert (
        choices.METHOD_CHOICES
        == registry.choices("method")
        == ("id", "kirec", "init", "semantic-only", "unisrec", "llm-esr")
    )
    assert choices.FUSION_CHOICES == registry.choices("fusion") == ("add", "concat", "gate", "gated-add")
    assert choices.FIXED_REDUCTIONS == ("pca", "pca-whiten", "random")
    assert choices.ADAPTER_REDUCTIONS == ("adapter-linear", "adapter-mlp")
    assert choices.REDUCTION_CHOICES == registry.choices("reduction")
    assert choices.LOSS_CHOICES == registry.choices("loss") == ("ce", "bce", "sampled-softmax")
    assert choices.ENCODER_CHOICES == ("minilm", "llm") and choices.EXTRACTOR_CHOICES == (
        "llama-cpp",
        "transformers",
        "openai",
    )
    assert choices.PROTOCOL_CHOICES == ("full", "sampled") and choices.EMBED_TEXT_CHOICES == (
        "attributes",
        "raw",
        "both",
    )
    assert set(registry.KINDS) == {e.kind for e in registry.entries()}


def test_help_strings_come_per_name_in_listed_order():
    assert list(registry.help_for("fusion")) == list(choices.FUSION_CHOICES)
    assert registry.describe("loss").startswith("ce: full softmax")
    assert registry.describe("loss").count("; ") == len(choices.LOSS_CHOICES) - 1


def test_an_unknown_name_is_a_config_error_naming_the_field_with_a_did_you_mean():
    with pytest.raises(
        ConfigError, match=r"^knowledge\.fusion: unknown 'gatee'; did you mean 'gate'\? \(choose: add, concat"
    ):
        registry.load("fusion", "gatee")
    with pytest.raises(ConfigError, match=r"^train\.loss: unknown 'hinge' \(choose: ce, bce, sampled-softmax\)$"):
        registry.entry("loss", "hinge")
    with pytest.raises(KeyError, match="no kind 'colour'"):
        registry.choices("colour")


def _classes_defined_in(module, base):
    return {
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__ and issubclass(obj, base) and obj is not base
    }


def _registered(kind):
    return {e.load() for e in registry.entries(kind)}


def test_every_method_module_is_registered_and_is_one_method():
    import engine.methods
    from engine.methods.base import Method

    modules = [m.name for m in pkgutil.iter_modules(engine.methods.__path__) if m.name != "base"]
    assert sorted(modules) == sorted(e.target.split(":")[0].rsplit(".", 1)[1] for e in registry.entries("method"))
    for name in modules:
        module = importlib.import_module(f"engine.methods.{name}")
        assert len(_classes_defined_in(module, Method)) == 1, f"engine/methods/{name}.py: one method per module"
    assert _registered("method") == {
        cls
        for name in modules
        for cls in _classes_defined_in(importlib.import_module(f"engine.methods.{name}"), Method)
    }


def test_every_fusion_reduction_and_backbone_class_is_registered():
    from engine.models import base as model_base
    from engine.models import bert4rec, gru4rec, sasrec
    from engine.semantic import adapters, fusion, reduction

    fusions = _classes_defined_in(fusion, fusion.FusedItems)
    assert fusions == _registered("fusion")  # FusedItems itself is abstract (test below)
    fixed = {cls for cls in vars(reduction).values() if inspect.isclass(cls) and hasattr(cls, "fit")}
    learned = _classes_defined_in(adapters, adapters.nn.Module)
    assert fixed | learned == _registered("reduction")
    assert {e.load() for e in registry.entries("reduction") if e.group == "fixed"} == fixed
    backbones = set().union(
        *(_classes_defined_in(m, model_base.SequentialBackbone) for m in (sasrec, gru4rec, bert4rec))
    )
    assert backbones == _registered("backbone")


def test_every_loss_and_dataset_format_is_registered():
    from engine.data.formats import FORMATS
    from engine.models import losses

    assert tuple(FORMATS) == registry.choices("dataset_format")
    assert all(
        FORMATS[e.name].load is e.load().load and FORMATS[e.name].description == e.help
        for e in registry.entries("dataset_format")
    )
    loss_functions = {
        obj
        for name, obj in vars(losses).items()
        if inspect.isfunction(obj)
        and list(inspect.signature(obj).parameters) == ["h", "positives", "source", "num_negatives", "generator"]
    }
    assert loss_functions == _registered("loss")


def test_the_fusion_base_cannot_stand_in_for_an_unknown_mode():
    import torch

    from engine.semantic.fusion import FusedItems, SemanticTable, fused_items

    table = SemanticTable(torch.zeros(5, 4).numpy())
    with pytest.raises(TypeError, match="base of the fusion modes"):
        FusedItems(4, 4, table)
    with pytest.raises(ConfigError, match="knowledge.fusion: unknown 'mul'"):
        fused_items("mul", 4, 4, table)


def test_the_registry_the_choices_and_the_method_declarations_import_no_torch():
    code = (
        "import sys, engine.registry, engine.choices, engine.config\n"
        "[engine.registry.load('method', name) for name in engine.registry.choices('method')]\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
