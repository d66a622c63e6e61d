"""Zero-shot scoring: a pretraining checkpoint rates a labeled set through a template, with no training.

``lmforge eval ckpt_path=<pretraining checkpoint> data=<labeled set> template=<name>`` builds the
``prompt_lm`` task on the checkpoint (its backbone and LM head, its tokenizer) and the labeled set put
into the template; no optimiser is made and no weight changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lmforge.data.labeled import PromptDataModule
from lmforge.errors import ConfigError
from lmforge.io.checkpoints import checkpoint_tokenizer, read_checkpoint
from lmforge.objectives.settings import PromptLMSettings
from lmforge.run.registry import CORPUS, LABELED, OBJECTIVES, objective
from lmforge.run.spec import check_lm_head, data_spec
from lmforge.tasks import PromptLM
from lmforge.tasks.base import model_config


def zero_shot(
    ckpt_path: str, template: Mapping[str, Any], data: DictConfig | None, paths: DictConfig
) -> tuple[PromptLM, PromptDataModule]:
    """The ``prompt_lm`` task on the pretraining checkpoint ``ckpt_path`` (eval mode) and the labeled
    set ``data`` (a data preset's node) in ``template``, prepared; ``paths`` resolves the preset's
    folders."""
    checkpoint = read_checkpoint(ckpt_path, weights=False)
    hparams = checkpoint.get("hyper_parameters", {})
    kind = hparams.get("objective", {}).get("kind")
    tokenizer = checkpoint_tokenizer(checkpoint, ckpt_path)
    if kind not in OBJECTIVES or tokenizer is None:
        raise ConfigError("ckpt_path", f"{ckpt_path} is not a checkpoint written by lmforge's train.py")
    if OBJECTIVES[kind].reads != CORPUS:
        own = ": it carries its own template, drop template=" if kind == "prompt_lm" else ""
        raise ConfigError(
            "template",
            f"a template scores zero-shot from a pretraining checkpoint (objective mlm or clm), and "
            f"{ckpt_path} was trained with objective.kind={kind}{own}",
        )
    if not data or LABELED not in data:
        raise ConfigError(
            "data",
            "zero-shot scoring reads a labeled set: choose one, e.g. data=movie_sentiment or data=csv "
            "data.source.path=<file>",
        )
    model = dataclasses.replace(model_config(hparams["model"]), init_from=str(ckpt_path))
    entry = objective("prompt_lm")
    settings = entry.settings({"kind": entry.kind, "template": template})
    assert isinstance(settings, PromptLMSettings)
    settings.check_model(model)
    check_lm_head(model, entry)
    # the preset's ${model.vocab_size}, ${seed} and ${paths.*} resolve as in a training run
    root = OmegaConf.create(
        {
            "model": {"vocab_size": model.vocab_size},
            "seed": 0,
            "paths": OmegaConf.to_container(paths, resolve=True),
            "data": OmegaConf.to_container(data, resolve=False),
        }
    )
    datamodule = data_spec(root.data, model, entry, settings).build()
    datamodule.use_tokenizer(tokenizer, f"the tokenizer of {ckpt_path}", "ckpt_path")
    datamodule.prepare_data()
    task = PromptLM(model, settings, {}, **PromptLM.data_arguments(datamodule))
    return task.eval(), datamodule
