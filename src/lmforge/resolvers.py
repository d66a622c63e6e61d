"""OmegaConf resolvers used by ``conf/``: registered before Hydra composes a config."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def project_root() -> str:
    """The checkout holding ``conf/`` (editable install), else the directory the command runs in."""
    checkout = Path(__file__).resolve().parents[2]
    return str(checkout) if (checkout / "conf").is_dir() else os.getcwd()


def tokenizer_kind(model_target: str) -> str:
    """The tokenizer a backbone family reads: byte-level BPE for decoders, WordPiece for BERT."""
    decoders = ("GPTConfig", "LlamaConfig", "DecoderConfig")
    return "bpe" if model_target.rsplit(".", 1)[-1] in decoders else "wordpiece"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("lmforge.root", project_root, replace=True)
    OmegaConf.register_new_resolver("lmforge.tokenizer_kind", tokenizer_kind, replace=True)
