"""The named options of a run, as tuples: the engine validates against these and the front ends offer them (the
TUI's Train form, CLI help) without importing the heavy modules that implement them.

The names come from engine.registry (with their help strings and implementations); these tuples are kept
because the config, the CLI and the Train form import them.
"""

from __future__ import annotations

from engine import registry

BACKBONE_CHOICES = registry.choices("backbone")
METHOD_CHOICES = registry.choices("method")
FUSION_CHOICES = registry.choices("fusion")
FIXED_REDUCTIONS = registry.choices("reduction", group="fixed")  # fitted before training
ADAPTER_REDUCTIONS = registry.choices("reduction", group="adapter")  # trained jointly with the backbone
SASREC_BLOCK_CHOICES = ("pre-norm", "kang")  # engine.models.sasrec: RecBole-style pre-norm, or Kang & McAuley's own
INIT_CHOICES = ("normal", "xavier")  # a transformer backbone's own weights: N(0, 0.02) (RecBole) or Xavier normal
REDUCTION_CHOICES = FIXED_REDUCTIONS + ADAPTER_REDUCTIONS
ENCODER_CHOICES = registry.choices("encoder")
EMBED_TEXT_CHOICES = registry.choices("embed_text")
LOSS_CHOICES = registry.choices("loss")
LR_SCHEDULE_CHOICES = registry.choices("lr_schedule")
PROTOCOL_CHOICES = registry.choices("protocol")
EXTRACTOR_CHOICES = registry.choices("extractor")
DATASET_FORMAT_CHOICES = registry.choices("dataset_format")
ANSWER_FORMAT_CHOICES = registry.choices("answer_format")  # a prompt's `answer_format`
DEVICE_SPEC = (
    r"auto|cpu|cuda(:\d+)?"  # the syntax engine.training.device resolves; whether the device exists is its job
)
SELECTION_METRIC_K = 10  # early stopping and best-epoch selection use NDCG@10, so eval.ks must contain 10
# llm-esr's distillation teachers: the neighbours re-encoded by the current model at every step (the paper), or
# every user's teacher state encoded once at each epoch's start and reused through it (3.4 x less time an epoch on
# ml-latest-small, docs/results/README.md "LLM-ESR")
DISTILL_TEACHER_CHOICES = ("step", "epoch")
# knowledge.side_fields: where an item's categorical side values come from (engine.semantic.side_fields), the same
# sources as the embedded text's, or none
SIDE_FIELDS_CHOICES = ("none",) + EMBED_TEXT_CHOICES
