"""LLM backends behind one interface (`ExtractionBackend`), chosen by `knowledge.extractor`."""

from __future__ import annotations

from typing import Any

from engine.choices import EXTRACTOR_CHOICES as EXTRACTORS  # one list of names, torch-free
from engine.extraction.backends.base import BackendError, ExtractionBackend


def create_backend(
    extractor: str, llm_model: str | None = None, llm_url: str | None = None, **options: Any
) -> ExtractionBackend:
    # llm_concurrency (KnowledgeConfig's) bounds an OpenAI-compatible server's in-flight requests; local backends ignore it
    concurrency = options.pop("llm_concurrency", None)
    """A backend for KnowledgeConfig's (extractor, llm_model, llm_url); heavy imports happen only for the one chosen."""
    if extractor == "llama-cpp":
        from engine.extraction.backends.llama_cpp import LlamaCppBackend

        return LlamaCppBackend(llm_model, **options)
    if extractor == "transformers":
        from engine.extraction.backends.llama_cpp import default_gguf_path
        from engine.extraction.backends.transformers_hf import TransformersBackend

        return TransformersBackend(llm_model or default_gguf_path(), **options)
    if extractor == "openai":
        from engine.extraction.backends.openai_compat import OpenAICompatBackend

        if not llm_url or not llm_model:
            raise BackendError("knowledge.extractor = openai needs knowledge.llm_url and knowledge.llm_model (the server's model name)")
        if concurrency is not None:
            options.setdefault("max_concurrency", concurrency)
        return OpenAICompatBackend(llm_url, llm_model, **options)
    raise BackendError(f"knowledge.extractor: unknown extractor '{extractor}' (choose: {', '.join(EXTRACTORS)})")


__all__ = ["BackendError", "EXTRACTORS", "ExtractionBackend", "create_backend"]
