"""Backbones written from one library of blocks (attention, feed-forward, positions, norms)."""

from lmforge.models.bert import BertConfig, BertModel
from lmforge.models.cache import KVCache
from lmforge.models.config import TransformerConfig
from lmforge.models.decoder import DecoderConfig, DecoderModel
from lmforge.models.gpt import GPTConfig
from lmforge.models.llama import LlamaConfig

BACKBONES = {
    BertConfig: BertModel,
    GPTConfig: DecoderModel,
    LlamaConfig: DecoderModel,
    DecoderConfig: DecoderModel,
}


def build_backbone(config: TransformerConfig):
    """The backbone class that matches a config's type."""
    for config_type, model_type in BACKBONES.items():
        if type(config) is config_type:
            return model_type(config)
    raise TypeError(f"no backbone is registered for {type(config).__name__}")


def is_decoder(config: TransformerConfig) -> bool:
    return isinstance(config, DecoderConfig)


def tokenizer_kind(config: TransformerConfig) -> str:
    """The tokenizer a backbone family reads: byte-level BPE for decoders, WordPiece for BERT."""
    return "bpe" if is_decoder(config) else "wordpiece"


def config_node(config: TransformerConfig) -> dict:
    """A model config as plain data with its ``_target_`` (what checkpoints keep and Hydra builds)."""
    cls = type(config)
    exported = globals().get(cls.__name__) is cls
    target = f"{__name__}.{cls.__name__}" if exported else f"{cls.__module__}.{cls.__qualname__}"
    return {"_target_": target, **config.to_dict()}


__all__ = [
    "BACKBONES",
    "BertConfig",
    "BertModel",
    "DecoderConfig",
    "DecoderModel",
    "GPTConfig",
    "KVCache",
    "LlamaConfig",
    "TransformerConfig",
    "build_backbone",
    "config_node",
    "is_decoder",
    "tokenizer_kind",
]
