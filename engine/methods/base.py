"""What a knowledge-injection method is: one class, registered in engine.registry under its `knowledge.method`
name, that declares what it needs and builds the run's item representation (and, where it needs another, the
model).

A method is called with an `ItemBuild`: the knowledge config, the sizes, the checked semantic table [N + 1, E]
(None for a method that needs none) and the records it fills (`info` for the run's params, `notes` for the user).
When a finished run is reloaded, `stored` holds the checkpoint's item-representation tensors instead of a
semantic table: the method then builds the same modules without extraction, encoding or reduction (their values
come from the checkpoint). `engine.semantic.fusion.semantic_table_for` does the reduction-or-adapter part for
any method that uses a semantic table.

Method modules import torch inside their methods, not at the top: the config reads a method's declarations
(`config_problem`) to check a configuration before any data is read, and it stays torch-free.

An extra training-loss term (LLM-ESR's self-distillation, say) belongs to the model or the item representation
the method builds: override `extra_loss_term()` there (engine.models.base); the trainer adds it at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:
    import numpy as np
    import torch

    from engine.config import KnowledgeConfig, RunConfig
    from engine.models.base import ItemRepresentation, SequentialBackbone


@dataclass
class ItemBuild:
    kcfg: "KnowledgeConfig"
    num_items: int
    dim: int  # the backbone's hidden size D
    semantic: "np.ndarray | None" = None  # [num_items + 1, E], row 0 = padding zeros, checked; None if not needed
    seed: int = 0
    layer_norm: bool = False  # `add` fusion only
    adapter_hidden: int | None = None
    adapter_dropout: float = 0.1
    stored: "Mapping[str, torch.Tensor] | None" = None  # reload: the checkpoint's tensors under `items.`
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def reloading(self) -> bool:
        return self.stored is not None


class Method:
    """The base of every method; a subclass overrides `item_representation` (and `model` if it needs its own)."""

    needs_semantic: ClassVar[bool] = True  # False: no semantic table is extracted, embedded or read
    fixed_reduction_only: ClassVar[bool] = False  # True: the reduction must be fitted before training (no adapter)
    uses_fusion: ClassVar[bool] = False  # True: knowledge.fusion chooses how it combines ID and semantic vectors
    # False: the method's model reads its item representation's own parts (llm-esr's views, unisrec's cosine
    # scores over its whitened table), so knowledge.side_fields cannot be added on top of it
    takes_side_fields: ClassVar[bool] = True

    def config_problem(self, kcfg: "KnowledgeConfig") -> tuple[str, str] | None:
        """(dotted key, problem) when the knowledge config asks this method for something it cannot do, else
        None; torch-free, so validation can call it before any data is read."""
        from engine import registry

        problem = self.side_fields_problem(kcfg)
        if problem is not None:
            return problem
        if (
            self.needs_semantic
            and self.fixed_reduction_only
            and kcfg.reduction in registry.choices("reduction", "adapter")
        ):
            fixed = ", ".join(registry.choices("reduction", "fixed"))
            return (
                "knowledge.reduction",
                f"'{kcfg.reduction}' is trained with the model, so it cannot initialise the "
                f"ID table before training; method '{kcfg.method}' needs one of {fixed}",
            )
        return None

    def side_fields_problem(self, kcfg: "KnowledgeConfig") -> tuple[str, str] | None:
        if kcfg.side_fields == "none" or self.takes_side_fields:
            return None
        from engine import registry

        taking = [name for name in registry.choices("method") if registry.load("method", name).takes_side_fields]
        return (
            "knowledge.side_fields",
            f"method '{kcfg.method}' builds its own item views; side fields apply to {', '.join(taking)}",
        )

    def item_representation(self, build: ItemBuild) -> "ItemRepresentation":
        raise NotImplementedError

    def model(self, cfg: "RunConfig", num_items: int, items: "ItemRepresentation") -> "SequentialBackbone":
        """The backbone `model.backbone` names around `items`; a method with its own architecture overrides this."""
        from engine.models.factory import build_model

        return build_model(cfg.model, num_items, items)

    def prepare_training(self, model: "SequentialBackbone", dataset: Any) -> None:
        """Called once before training (never on reload) with the run's SequenceDataset: for what a method
        computes from the training data alone (llm-esr's similar users). By default nothing."""
