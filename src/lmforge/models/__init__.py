"""Backbones written from one library of blocks (attention, feed-forward, positions, norms)."""

from lmforge.models.bert import BertConfig, BertModel
from lmforge.models.config import TransformerConfig

BACKBONES = {BertConfig: BertModel}


def build_backbone(config: TransformerConfig):
    """The backbone class that matches a config's type."""
    for config_type, model_type in BACKBONES.items():
        if type(config) is config_type:
            return model_type(config)
    raise TypeError(f"no backbone is registered for {type(config).__name__}")


__all__ = ["BACKBONES", "BertConfig", "BertModel", "TransformerConfig", "build_backbone"]
