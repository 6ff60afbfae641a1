"""LLM attribute extraction, the first stage of knowledge injection: prompt files → LLM → validated attributes → cache."""

from engine.extraction.backends import BackendError, ExtractionBackend, create_backend
from engine.extraction.backends.base import Refusal
from engine.extraction.cache import ExtractionCache, default_cache_path, item_text_hash
from engine.extraction.extractor import ExtractionProgress, ExtractionReport, cached_attributes, extract_items
from engine.extraction.quality import QualityReport, extraction_quality, measure_quality
from engine.extraction.prompts import (
    Prompt,
    PromptError,
    dataset_fields,
    default_prompt_for,
    load_prompt,
    save_prompt_version,
    validate_prompt,
)

__all__ = [
    "BackendError",
    "ExtractionBackend",
    "ExtractionCache",
    "ExtractionProgress",
    "ExtractionReport",
    "Prompt",
    "PromptError",
    "QualityReport",
    "Refusal",
    "cached_attributes",
    "create_backend",
    "dataset_fields",
    "default_cache_path",
    "default_prompt_for",
    "extract_items",
    "extraction_quality",
    "item_text_hash",
    "measure_quality",
    "load_prompt",
    "save_prompt_version",
    "validate_prompt",
]
