"""The named options of a run, in one torch-free module: the engine validates against these and the front ends
offer them (the TUI's Train form, CLI help) without importing the heavy modules that implement them."""

from __future__ import annotations

BACKBONE_CHOICES = ("sasrec", "gru4rec", "bert4rec")
SASREC_BLOCK_CHOICES = ("pre-norm", "kang")  # engine.models.sasrec: RecBole-style pre-norm, or Kang & McAuley's own
INIT_CHOICES = ("normal", "xavier")  # a transformer backbone's own weights: N(0, 0.02) (RecBole) or Xavier normal
METHOD_CHOICES = ("id", "kirec", "init", "semantic-only")
FUSION_CHOICES = ("add", "concat", "gate", "gated-add")
FIXED_REDUCTIONS = ("pca", "pca-whiten", "random")  # fitted before training
ADAPTER_REDUCTIONS = ("adapter-linear", "adapter-mlp")  # trained jointly with the backbone
REDUCTION_CHOICES = FIXED_REDUCTIONS + ADAPTER_REDUCTIONS
ENCODER_CHOICES = ("minilm", "llm")
EMBED_TEXT_CHOICES = ("attributes", "raw", "both")
LOSS_CHOICES = ("ce", "bce", "sampled-softmax")  # engine.models.losses implements these
PROTOCOL_CHOICES = ("full", "sampled")  # engine.evaluation.evaluator implements these
EXTRACTOR_CHOICES = ("llama-cpp", "transformers", "openai")  # engine.extraction.backends implements these
DEVICE_SPEC = r"auto|cpu|cuda(:\d+)?"  # the syntax engine.training.device resolves; whether the device exists is its job
SELECTION_METRIC_K = 10  # early stopping and best-epoch selection use NDCG@10, so eval.ks must contain 10
