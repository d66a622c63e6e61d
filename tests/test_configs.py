"""Every preset composes and instantiates; BERT sizes match a parameter-count formula."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lmforge.models import BertConfig, build_backbone
from lmforge.objectives import MaskedLMHead, NextSentenceHead

from .conftest import CONF

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
LADDER = {  # layers, width (heads do not change the count)
    "bert_tiny": (2, 128),
    "bert_mini": (4, 256),
    "bert_small": (4, 512),
    "bert_medium": (8, 512),
    "bert_base": (12, 768),
    "bert_large": (24, 1024),
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def bert_parameters(layers: int, h: int, vocab: int = 30522, positions: int = 512) -> int:
    """BERT with MLM and NSP heads, counted from its definition (feed-forward width 4h)."""
    embeddings = vocab * h + positions * h + 2 * h + 2 * h  # tokens, positions, segments, LayerNorm
    attention = 3 * (h * h + h) + (h * h + h)
    feed_forward = (h * 4 * h + 4 * h) + (4 * h * h + h)
    layer = attention + feed_forward + 2 * 2 * h  # two LayerNorms
    mlm = (h * h + h) + 2 * h + vocab  # transform, LayerNorm, output bias (decoder tied)
    nsp = (h * h + h) + (2 * h + 2)  # pooler, classifier
    return embeddings + layers * layer + mlm + nsp


def test_the_ladder_is_complete():
    assert set(LADDER) <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_model_preset_instantiates_with_the_expected_size(name, make_cfg):
    cfg = make_cfg(f"model={name}", tiny=False)
    config = instantiate(cfg.model)
    assert isinstance(config, BertConfig)
    with torch.device("meta"):  # no memory for the large ones
        backbone = build_backbone(config)
        heads = [MaskedLMHead(config.d_model, config.vocab_size), NextSentenceHead(config.d_model)]
    total = backbone.num_parameters() + sum(p.numel() for h in heads for p in h.parameters())
    layers, width = LADDER[name]
    assert (config.n_layers, config.d_model) == (layers, width)
    assert total == bert_parameters(layers, width)


def test_bert_base_has_about_110_million_parameters():
    assert bert_parameters(12, 768) == pytest.approx(110e6, rel=0.01)


@pytest.mark.parametrize(
    ("group", "name"),
    [
        (group, name)
        for group in ("objective", "optim", "logger", "callbacks", "debug", "experiment")
        for name in options(group)
    ],
)
def test_every_preset_composes_and_builds(group, name, make_cfg):
    cfg = make_cfg(f"{group}={name}", tiny=False)
    OmegaConf.to_container(cfg, resolve=True)
    for entry in (cfg.get("callbacks") or {}).values():
        if entry:
            instantiate(entry)
    for entry in (cfg.get("logger") or {}).values():
        if entry:
            instantiate(entry)


@pytest.mark.parametrize("name", options("data"))
def test_data_presets_compose(name, make_cfg):
    overrides = [f"data={name}"]
    if name == "text_files":
        overrides.append(f"data.corpus.paths={Path(__file__).parent / 'fixtures/corpus/workshop.txt'}")
    cfg = make_cfg(*overrides, tiny=False)
    if name == "pretraining":  # the shared base: no corpus of its own
        assert OmegaConf.missing_keys(cfg) == {"data.corpus"}
        return
    datamodule = instantiate(cfg.data)
    assert datamodule.batch_size == cfg.data.batch_size


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_presets_build(name, make_cfg):
    cfg = make_cfg(f"trainer={name}", tiny=False)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU: trainer=gpu is refused before work (see test_errors)")
    assert instantiate(cfg.trainer, logger=False).max_steps == cfg.trainer.max_steps


def test_default_composition(make_cfg):
    cfg = make_cfg(tiny=False)
    assert cfg.model.d_model == 128 and cfg.model.n_layers == 2
    assert cfg.objective.nsp is True and cfg.data.nsp is True
    assert cfg.data.corpus._target_.endswith("StdlibCorpus")
