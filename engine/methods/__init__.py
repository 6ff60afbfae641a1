"""Knowledge-injection methods, one module each (registered in engine.registry under their `knowledge.method`
names): id, kirec, init, semantic-only. See engine.methods.base for the interface.

Adding a method: a module here with a `Method` subclass, one line in engine.registry, and its tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.methods.base import ItemBuild, Method

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.models.base import ItemRepresentation, SequentialBackbone


def get_method(name: str) -> Method:
    """The registered method `name` (knowledge.method); an unknown name is a ConfigError naming the field."""
    from engine import registry

    return registry.load("method", name)()


def check_method_config(cfg: "RunConfig") -> None:
    """Refuses (ConfigError, naming the field) a knowledge config its method cannot train, before any data is
    read: torch-free, called right after the config's own validation."""
    from engine.config import ConfigError

    problem = get_method(cfg.knowledge.method).config_problem(cfg.knowledge)
    if problem is not None:
        raise ConfigError(f"{problem[0]}: {problem[1]}")


def build_run_model(cfg: "RunConfig", num_items: int, items: "ItemRepresentation") -> "SequentialBackbone":
    """The model a run trains: its method's (the configured backbone around `items`, unless the method has its own)."""
    return get_method(cfg.knowledge.method).model(cfg, num_items, items)


__all__ = ["ItemBuild", "Method", "build_run_model", "get_method"]
