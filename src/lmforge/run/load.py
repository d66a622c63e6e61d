"""A task rebuilt from one of our checkpoints, for inference: eval, generate, merge, export."""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer

from lmforge.errors import ConfigError
from lmforge.io.checkpoints import checkpoint_tokenizer, read_checkpoint
from lmforge.run.registry import OBJECTIVES


def load_task(ckpt_path: str, device: torch.device | str = "cpu") -> tuple[Any, Tokenizer, dict[str, Any]]:
    """The task module, for inference (eval mode, encoders folded), on ``device``, its tokenizer, and
    the checkpoint itself."""
    checkpoint = read_checkpoint(ckpt_path)
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    kind = hparams.get("objective", {}).get("kind")
    tokenizer = checkpoint_tokenizer(checkpoint, ckpt_path)
    if kind not in OBJECTIVES or tokenizer is None:
        raise ConfigError("ckpt_path", f"{ckpt_path} is not a checkpoint written by lmforge's train.py")
    task = OBJECTIVES[kind].task.rebuild(hparams, tokenizer)  # the checkpoint is read once, here
    task.load_state_dict(checkpoint["state_dict"], strict=task.strict_loading)
    fold = getattr(task.method, "fold", None)
    if fold is not None:  # prefix and p-tuning: their encoders' outputs become plain tensors for inference
        fold()
    return task.to(device).eval(), tokenizer, checkpoint
