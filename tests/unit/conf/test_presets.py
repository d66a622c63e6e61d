"""Every preset composes and instantiates; BERT sizes match a parameter-count formula."""

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import OmegaConf

from lmforge.errors import ConfigError
from lmforge.models import BertConfig, build_backbone
from lmforge.objectives import MaskedLMHead, NextSentenceHead
from lmforge.run.checks import build
from lmforge.run.spec import resolve
from tests.conftest import CONF, CORPUS

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


def gpt_parameters(layers: int, h: int, f: int, vocab: int = 50257, positions: int = 1024) -> int:
    """GPT-2 counted from its definition: tied head, learned positions, biases everywhere."""
    layer = 2 * 2 * h + (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h)
    return vocab * h + positions * h + layers * layer + 2 * h


def llama_parameters(layers: int, h: int, heads: int, kv_heads: int, f: int, vocab: int = 32000) -> int:
    """LLaMA counted from its definition: untied head, no biases, grouped K/V, SwiGLU (3 matrices)."""
    kv = 2 * h * (h // heads) * kv_heads
    layer = 2 * h + h * h + kv + h * h + 3 * h * f
    return 2 * vocab * h + layers * layer + h


# name: (count formula's arguments, published size) for the decoder presets
DECODERS = {
    "gpt2_small": (gpt_parameters, (12, 768, 3072), 124.4e6),
    "gpt2_medium": (gpt_parameters, (24, 1024, 4096), 354.8e6),
    "gpt2_large": (gpt_parameters, (36, 1280, 5120), 774.0e6),
    "gpt2_xl": (gpt_parameters, (48, 1600, 6400), 1557.6e6),
    "tinyllama_1b": (llama_parameters, (22, 2048, 32, 4, 5632), 1100.0e6),
}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoder_preset_matches_its_published_size(name, make_cfg):
    cfg = make_cfg(f"model={name}", tiny=False)
    assert cfg.objective.kind == "clm"  # a decoder preset picks the causal-LM objective
    config = instantiate(cfg.model)
    with torch.device("meta"):
        backbone = build_backbone(config)
    formula, args, published = DECODERS[name]
    assert backbone.num_parameters() == formula(*args)
    assert backbone.num_parameters() == pytest.approx(published, rel=0.001)


@pytest.mark.parametrize("name", ["gpt_tiny", "gpt_mini", "llama_tiny", "llama_mini"])
def test_small_decoder_presets_build_run_and_count_their_flops(name, make_cfg):
    config = instantiate(make_cfg(f"model={name}", "model.vocab_size=300", tiny=False).model)
    model = build_backbone(config).eval()
    logits = model.logits(model(torch.randint(0, 300, (2, 16))))
    assert logits.shape == (2, 16, 300)
    # 6 N + 12 L d T, where N leaves out what is only looked up: GPT's position table (its token
    # table is also the head, so it counts), LLaMA's token table (its head is a separate matrix).
    d = config.d_model
    looked_up = config.max_seq_len * d if name.startswith("gpt") else 300 * d
    attention = 12 * config.n_layers * d * 128
    assert model.flops_per_token(128) == 6 * (model.num_parameters() - looked_up) + attention


def test_bert_counts_its_flops_without_its_lookup_tables():
    config = BertConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=40)
    model = build_backbone(config)
    tables = 300 * 32 + 2 * 32 + 40 * 32  # tokens, segments, positions
    assert model.flops_per_token(40) == 6 * (model.num_parameters() - tables) + 12 * 2 * 32 * 40


@pytest.mark.parametrize("name", sorted(LADDER))
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


# Presets that cannot run on the defaults, each refused before any work with the reason
REFUSED = {
    ("objective", "classify"): "labeled data presets",  # a classifier needs labeled data
    ("objective", "clm"): "bidirectional encoder",  # causal LM on the default BERT
    ("experiment", "finetune_trec"): "is missing",  # its prepared data (make data-finetune)
    ("objective", "prompt_lm"): "through a template",  # it needs template=<name>
    ("objective", "sft"): "bidirectional encoder",  # instruction tuning on the default BERT
    ("experiment", "finetune_minilm"): "is not a folder",  # its pretrained model (make data-pretrained)
}


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
    callbacks = [instantiate(entry) for entry in (cfg.get("callbacks") or {}).values() if entry]
    loggers = [instantiate(entry) for entry in (cfg.get("logger") or {}).values() if entry]
    assert all(isinstance(callback, Callback) for callback in callbacks), callbacks
    assert all(isinstance(logger, Logger) for logger in loggers), loggers
    assert callbacks or group == "debug"  # fdr runs without callbacks
    assert loggers or (group in ("debug", "logger") and name != "many")
    with torch.device("meta"):
        backbone = build_backbone(instantiate(cfg.model))
    assert backbone.num_parameters() > 1e6
    if (group, name) in REFUSED:
        with pytest.raises(ConfigError, match=REFUSED[group, name]):
            resolve(cfg)
    else:
        assert resolve(cfg).objective.kind == cfg.objective.kind


# The labeled sets (they choose objective=classify) need their files: tests/unit/datasets/test_labeled_sets.py
# composes and builds each of them on its fixtures.
LABELED = {
    "labeled",
    "csv",
    "jsonl",
    "trec",
    "movie_sentiment",
    "sms_spam",
    "wordnet_supersense",
    "bible_paraphrase",
}
# The prompt/response sets (they choose objective=sft) need their files too: test_sft.py builds them.
PAIRS = {"pairs", "pairs_jsonl", "gcide_definitions", "bible_modern"}


@pytest.mark.parametrize("name", [name for name in options("data") if name not in LABELED | PAIRS])
def test_data_presets_compose(name, make_cfg, tmp_path):
    overrides = [f"data={name}"]
    if name == "text_files":
        overrides.append(f"data.corpus.paths={CORPUS / 'workshop.txt'}")
    if name == "debian_docs":  # stand-ins for the prepared parts (tests/unit/datasets/test_debian_docs.py)
        for part in make_cfg(f"data={name}", tiny=False).data.corpus.parts:
            (tmp_path / f"{part}.txt").write_text("One sentence.\n\n")
        overrides.append(f"data.corpus.root={tmp_path}")
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
        pytest.skip("no CUDA GPU: trainer=gpu is refused before work (integration/test_refusals.py)")
    assert instantiate(cfg.trainer, logger=False).max_steps == cfg.trainer.max_steps


@pytest.mark.parametrize("name", options("precision"))
@pytest.mark.parametrize("trainer", ["default", "gpu"])
def test_a_precision_preset_wins_over_the_trainer_presets(name, trainer, make_cfg):
    cfg = make_cfg(f"trainer={trainer}", f"precision={name}", tiny=False)
    assert cfg.trainer.precision == name
    assert options("precision") == ["16-mixed", "32-true", "bf16-mixed", "bf16-true"]


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        (["model=gpt_tiny"], "clm"),
        (["model=llama_tiny"], "clm"),
        (["model=bert_tiny"], "mlm"),
        (["model=gpt_tiny", "objective=mlm"], "mlm"),  # the command line wins over the preset's choice
    ],
)
def test_a_decoder_preset_picks_causal_lm(overrides, kind, make_cfg):
    cfg = make_cfg(*overrides, tiny=False)
    assert cfg.objective.kind == kind


def test_bert_base_with_prefix_composes_and_builds(make_cfg):
    cfg = make_cfg("model=bert_base", "peft=prefix", tiny=False)
    assert cfg.peft.method == "prefix" and cfg.model.d_model == 768
    assert build(cfg.model).n_layers == 12
