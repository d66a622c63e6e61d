"""What a Hugging Face folder holds reaches our model whole, and comes back out of an export whole.

The references are transformers models with large random weights (std 0.5, every tensor perturbed):
attention is far from uniform and the MLM head's pre-activations spread over the range where GELU, its
tanh approximation and ReLU differ, so a wrong activation or a dropped tensor shows. Every parity test
also runs its negative control: the same comparison with the bug put back must fail.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.cli.export import main as export_main
from lmforge.cli.train import train
from lmforge.data.tokenized import TokenizedCorpus
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.hf import check_folder, load_backbone
from lmforge.io.tokenizers import PAD
from lmforge.models.feedforward import ACTIVATIONS
from lmforge.objectives import MaskedLMHead
from lmforge.run.load import load_task

from .conftest import TINY, run_cli
from .test_hf import as_pytorch_bin, llama, max_diff, sentences, transformers

ABSOLUTE = 1e-4  # largest |ours - theirs| of a logit
RELATIVE = 1e-5  # the same, over the largest |logit| (about 10 at this weight size)
STD = 0.5

# config.json's hidden_act -> the activation that would be wrong in its place (the negative control)
HEAD_ACTIVATIONS = {"gelu": "gelu_tanh", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "gelu"}


def reference_bert(folder: Path, hidden_act: str = "gelu", tie: bool = True) -> Path:
    """A BertForPreTraining of large random weights saved to ``folder``, with a vocab.txt of its size."""
    vocabulary = TokenizerSettings(kind="wordpiece", vocab_size=200, min_frequency=1).train(sentences())
    tokens = sorted(vocabulary.get_vocab().items(), key=lambda item: item[1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in tokens))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act=hidden_act,
        tie_word_embeddings=tie,
        initializer_range=STD,
    )
    model = transformers.BertForPreTraining(config)
    with torch.no_grad():  # biases and LayerNorms away from their 0 / 1 start, so their mapping shows
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * STD * 0.2)
    model.save_pretrained(folder)
    return folder


def inputs(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(5, vocab_size, (2, 12))
    segments = torch.cat((torch.zeros(2, 6), torch.ones(2, 6)), dim=1).long()
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0
    return ids, segments, mask


def disagreement(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    """Largest absolute difference, and the same over the largest |logit|."""
    diff = max_diff(ours, theirs)
    return diff, diff / theirs.abs().max().item()


def assert_agree(ours: torch.Tensor, theirs: torch.Tensor, case: str) -> None:
    absolute, relative = disagreement(ours, theirs)
    print(f"{case}: MLM logits max |diff| {absolute:.1e}, relative {relative:.1e}")  # shown by pytest -rP
    assert absolute < ABSOLUTE and relative < RELATIVE, (absolute, relative)


def assert_differ(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """The negative control: at least 5 times the tolerance (exact GELU against its tanh form gives
    8e-5 to 1.3e-4 here, ReLU against GELU and a dropped decoder 1e-2 or more)."""
    assert disagreement(ours, theirs)[1] > 5 * RELATIVE


def hf_logits(folder: Path, ids, segments, mask) -> torch.Tensor:
    """transformers' MLM logits from ``folder``, which must hold every tensor it reads (none made up)."""
    reference, loading = transformers.BertForPreTraining.from_pretrained(
        folder, attn_implementation="eager", output_loading_info=True
    )
    assert not loading["missing_keys"] and not loading["unexpected_keys"], loading
    reference.eval()
    with torch.no_grad():
        out = reference(input_ids=ids, token_type_ids=segments, attention_mask=mask, output_attentions=True)
    # the premise: attention far from uniform (1/12 per key), so the model's details all show
    assert min(layer[0].amax(-1).mean().item() for layer in out.attentions) > 0.5
    return out.prediction_logits


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("hidden_act", HEAD_ACTIVATIONS)
def test_mlm_logits_of_an_imported_bert_match_for_each_activation_tied_or_not(tmp_path, hidden_act, tie):
    folder = reference_bert(tmp_path, hidden_act, tie)
    backbone, heads = load_backbone(folder)
    config = backbone.config
    assert config.tie_embeddings is tie
    head = MaskedLMHead(
        config.d_model, config.vocab_size, config.norm_eps, activation=config.activation, tied=tie
    )
    head.load_state_dict({k[len("mlm_head.") :]: v for k, v in heads.items() if k.startswith("mlm_head.")})
    ids, segments, mask = inputs(config.vocab_size)
    real = mask.bool()
    theirs = hf_logits(folder, ids, segments, mask)[real]
    with torch.no_grad():
        hidden = backbone(ids, segments, mask)
        assert_agree(
            head(hidden, backbone.token_embedding.weight)[real], theirs, f"import {hidden_act} {tie=}"
        )
        if not tie:  # negative control: the untied decoder dropped for the word embedding
            dropped = nn.functional.linear(head.transform(hidden), backbone.token_embedding.weight, head.bias)
            assert_differ(dropped[real], theirs)
        head.act = ACTIVATIONS[HEAD_ACTIVATIONS[hidden_act]]()  # negative control: another head activation
        assert_differ(head(hidden, backbone.token_embedding.weight)[real], theirs)


def test_an_untied_folder_written_by_transformers_4_reads_the_bias_it_holds(tmp_path):
    """transformers 4 tied cls.predictions.decoder.bias to cls.predictions.bias and wrote only the latter."""
    folder = reference_bert(tmp_path, tie=False)
    tensors = load_file(folder / "model.safetensors")
    bias = tensors.pop("cls.predictions.decoder.bias")
    save_file({**tensors, "cls.predictions.bias": bias}, folder / "model.safetensors")
    _, heads = load_backbone(folder)
    assert torch.equal(heads["mlm_head.bias"], bias)
    assert torch.equal(heads["mlm_head.decoder.weight"], tensors["cls.predictions.decoder.weight"])


PRETRAIN = [
    *TINY,
    "trainer.max_steps=1",
    "trainer.val_check_interval=1",
    "trainer.log_every_n_steps=1",
    "data.max_seq_len=32",
]


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_pytorch_tanh", "relu"])
def test_a_bert_pretrained_from_hf_exports_what_it_imported(make_cfg, tmp_path, hidden_act, tie):
    folder = reference_bert(tmp_path / "hf", hidden_act, tie)
    cfg = make_cfg(*PRETRAIN, f"model.init_from=hf:{folder}")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    task, _, _ = load_task(str(ckpt))
    assert task.config.activation == ("gelu_tanh" if "tanh" in hidden_act else hidden_act)
    assert task.config.tie_embeddings is tie
    export_main([str(ckpt), "--out", str(tmp_path / "export")])
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["hidden_act"] == {"gelu_pytorch_tanh": "gelu_new"}.get(hidden_act, hidden_act)
    assert exported["tie_word_embeddings"] is tie
    tensors = load_file(tmp_path / "export" / "model.safetensors")
    assert ("cls.predictions.decoder.weight" in tensors) is not tie
    ids, segments, mask = inputs(task.config.vocab_size)
    real = mask.bool()
    theirs = hf_logits(tmp_path / "export", ids, segments, mask)[real]
    with torch.no_grad():
        hidden = task.backbone(ids, segments, mask)
        ours = task.mlm_head(hidden, task.backbone.token_embedding.weight)[real]
        assert_agree(ours, theirs, f"export {hidden_act} {tie=}")
        task.mlm_head.act = ACTIVATIONS[HEAD_ACTIVATIONS[hidden_act]]()  # negative control
        assert_differ(task.mlm_head(hidden, task.backbone.token_embedding.weight)[real], theirs)


def token_shards(data_dir: Path) -> list[TokenizedCorpus]:
    return [TokenizedCorpus.load(meta.parent) for meta in sorted(data_dir.rglob("tokens-*/meta.json"))]


@pytest.mark.parametrize("source", ["data.tokenizer.path", "model.init_from"])
def test_a_tokenizer_json_that_pads_and_truncates_leaves_whole_sentences_and_no_pad(
    make_cfg, tmp_path, caplog, source
):
    """sentence-transformers' tokenizer.json files pad to 128 and truncate: pretraining must not."""
    folder = reference_bert(tmp_path / "hf")
    tokenizer = TokenizerSettings(kind="wordpiece", vocab_size=200, min_frequency=1).train(sentences())
    tokenizer.enable_padding(length=128, pad_id=tokenizer.token_to_id(PAD), pad_token=PAD)
    tokenizer.enable_truncation(max_length=6)
    tokenizer.save(str(folder / "tokenizer.json"))  # read before the folder's vocab.txt
    given = (
        f"data.tokenizer.path={folder / 'tokenizer.json'}"
        if source == "data.tokenizer.path"
        else f"model.init_from=hf:{folder}"
    )
    cfg = make_cfg(*PRETRAIN, given)
    with caplog.at_level(logging.INFO, logger="lmforge"):
        train(cfg)
    (corpus,) = token_shards(Path(cfg.paths.data_dir))
    tokens = torch.from_numpy(corpus.tokens_between(0, corpus.n_tokens).astype("int64"))
    assert tokenizer.token_to_id(PAD) not in tokens
    assert corpus.sentence_lengths().max() > 6  # not truncated
    switched = [r.message for r in caplog.records if "switched off" in r.message]
    assert len(switched) == 1 and "padding (to 128 with [PAD]) and truncation (at 6 tokens)" in switched[0]


def break_folder(folder: Path, how: str) -> str:
    """Spoil a reference folder one way; returns what the refusal must say (a regular expression)."""
    config = json.loads((folder / "config.json").read_text())
    if how == "no weights":
        (folder / "model.safetensors").unlink()
        return "holds no weights"
    if how == "truncated pytorch_model.bin":
        as_pytorch_bin(folder)
        data = (folder / "pytorch_model.bin").read_bytes()
        (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
        return r"pytorch_model\.bin is truncated or corrupt"
    if how == "truncated model.safetensors":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        return r"model\.safetensors is truncated or corrupt"
    if how == "a tensor of another shape":
        (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
        return r"intermediate\.dense\.weight has shape \(64, 32\), this model needs \(48, 32\)"
    if how == "no tokenizer":
        (folder / "vocab.txt").unlink()
        return "holds no tokenizer"
    if how == "an activation we lack":
        (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_fast"}))
        return r"config\.json: .*hidden_act=gelu_fast"
    raise AssertionError(how)


BROKEN = [
    "no weights",
    "truncated pytorch_model.bin",
    "truncated model.safetensors",
    "a tensor of another shape",
    "no tokenizer",
    "an activation we lack",
]


@pytest.mark.parametrize("how", BROKEN)
def test_a_broken_folder_is_refused_naming_it_before_any_data_is_read(make_cfg, tmp_path, how):
    folder = reference_bert(tmp_path / "hf")
    expected = break_folder(folder, how)
    cfg = make_cfg(*PRETRAIN, f"model.init_from=hf:{folder}")
    with pytest.raises(ConfigError, match=f"{folder}.*{expected}|{expected}.*{folder}"):
        train(cfg)
    data_dir = Path(cfg.paths.data_dir)
    assert not data_dir.exists() or not any(data_dir.rglob("*"))


def test_the_command_line_refuses_a_folder_without_weights_before_the_corpus_is_read(tmp_path):
    folder = reference_bert(tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    tiny_data = [o for o in TINY if o.startswith(("data", "trainer", "callbacks"))]
    result = run_cli(
        "train.py",
        *tiny_data,
        f"model.init_from=hf:{folder}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{folder} holds no weights" in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()


def test_rope_scaling_is_refused_naming_the_folder_and_the_key(tmp_path):
    folder = llama(tmp_path, 10000.0, tie=False)
    config = json.loads((folder / "config.json").read_text())
    scaling = {"rope_type": "linear", "factor": 2.0}
    (folder / "config.json").write_text(json.dumps({**config, "rope_scaling": scaling}))
    with pytest.raises(ConfigError, match=rf"{folder}/config\.json: .*rope_scaling=.*linear"):
        check_folder(f"hf:{folder}")


class RunsCode:
    """Unpickling this calls ``os.system``: what a malicious pytorch_model.bin would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pytorch_model_bin_that_would_run_code_is_refused_unrun(tmp_path):
    folder = as_pytorch_bin(reference_bert(tmp_path / "hf"))
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    marker = tmp_path / "code-ran"
    torch.save({**state, "payload": RunsCode(marker)}, folder / "pytorch_model.bin")
    for read in (check_folder, load_backbone):
        with pytest.raises(ConfigError, match=r"pytorch_model\.bin: .*GLOBAL posix\.system.*cannot run code"):
            read(f"hf:{folder}")
    assert not marker.exists()
