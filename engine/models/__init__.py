"""Sequential backbones (SASRec, GRU4Rec, BERT4Rec) over a pluggable item representation, and their losses."""

from engine.models.base import IdEmbedding, ItemRepresentation, SequentialBackbone
from engine.models.bert4rec import BERT4Rec
from engine.models.factory import BACKBONES, build_model
from engine.models.gru4rec import GRU4Rec
from engine.models.losses import LOSSES, sequence_loss
from engine.models.sasrec import SASRec

__all__ = [
    "BACKBONES",
    "BERT4Rec",
    "GRU4Rec",
    "IdEmbedding",
    "ItemRepresentation",
    "LOSSES",
    "SASRec",
    "SequentialBackbone",
    "build_model",
    "sequence_loss",
]
