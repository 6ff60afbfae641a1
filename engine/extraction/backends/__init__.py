"""LLM backends behind one interface (`ExtractionBackend`), chosen by `knowledge.extractor`."""

from __future__ import annotations

from typing import Any

from engine.choices import EXTRACTOR_CHOICES as EXTRACTORS  # one list of names, torch-free
from engine.extraction.backends.base import BackendError, ExtractionBackend


def create_backend(
    extractor: str,
    llm_model: str | None = None,
    llm_url: str | None = None,
    n_threads: int | None = None,
    llm_concurrency: int | None = None,
    **options: Any,
) -> ExtractionBackend:
    """A backend for KnowledgeConfig's (extractor, llm_model, llm_url); heavy imports happen only for the one chosen.

    `n_threads` (None: every core) is for the local llama.cpp decoder, whose threads spin-wait: on a busy machine
    one thread is much faster than two. `llm_concurrency` bounds an OpenAI-compatible server's in-flight requests.
    Each backend gets only its own setting (a server has its own threads; torch is set by the run).
    """
    if extractor not in EXTRACTORS:
        raise BackendError(f"knowledge.extractor: unknown extractor '{extractor}' (choose: {', '.join(EXTRACTORS)})")
    from engine import registry

    return registry.load("extractor", extractor)(llm_model, llm_url, n_threads, llm_concurrency, **options)


# The registered extractors (engine.registry): (llm_model, llm_url, n_threads, llm_concurrency, **options) -> backend.


def llama_cpp_backend(
    llm_model: str | None, llm_url: str | None, n_threads: int | None, llm_concurrency: int | None, **options: Any
) -> ExtractionBackend:
    from engine.extraction.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(llm_model, n_threads=n_threads, **options)


def transformers_backend(
    llm_model: str | None, llm_url: str | None, n_threads: int | None, llm_concurrency: int | None, **options: Any
) -> ExtractionBackend:
    from engine.extraction.backends.llama_cpp import default_gguf_path
    from engine.extraction.backends.transformers_hf import TransformersBackend

    return TransformersBackend(llm_model or default_gguf_path(), **options)


def openai_backend(
    llm_model: str | None, llm_url: str | None, n_threads: int | None, llm_concurrency: int | None, **options: Any
) -> ExtractionBackend:
    from engine.extraction.backends.openai_compat import OpenAICompatBackend

    if not llm_url or not llm_model:
        raise BackendError(
            "knowledge.extractor = openai needs knowledge.llm_url and knowledge.llm_model (the server's model name)"
        )
    if llm_concurrency is not None:
        options.setdefault("max_concurrency", llm_concurrency)
    return OpenAICompatBackend(llm_url, llm_model, **options)


__all__ = ["BackendError", "EXTRACTORS", "ExtractionBackend", "create_backend"]
