"""Hugging Face folders read into our models: the same logits and greedy continuations as transformers
(on references of large weights, each comparison with a negative control), sharded and pickled layouts,
older names, and every mismatch named."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.errors import ConfigError
from lmforge.io.hf import check_folder, derive_model_config, load_backbone
from lmforge.io.init_from import check_init_from
from lmforge.models import rotary
from lmforge.models.decoding import generate
from lmforge.models.feedforward import ACTIVATIONS
from lmforge.objectives import MaskedLMHead, NextSentenceHead
from tests.conftest import assert_non_degenerate
from tests.support.hf import (
    HEAD_ACTIVATIONS,
    STD,
    TOLERANCE,
    as_pytorch_bin,
    assert_agree,
    assert_differ,
    attention_without_scale,
    gpt2,
    hf_bert,
    hf_logits,
    inputs,
    llama,
    max_diff,
    reference_bert,
    tiny_bert,
    transformers,
)

original_rotate_half = rotary.rotate_half


@pytest.mark.parametrize("pickled", [False, True], ids=["safetensors", "pytorch_bin"])
def test_bert_mlm_and_nsp_logits_match(tmp_path, pickled):
    folder = reference_bert(tmp_path)
    ids, segments, mask = inputs(200)
    real = mask.bool()
    theirs = hf_bert(folder, ids, segments, mask)
    if pickled:
        as_pytorch_bin(folder)
    backbone, heads = load_backbone(folder)
    config = backbone.config
    mlm = MaskedLMHead(config.d_model, config.vocab_size, config.norm_eps, activation=config.activation)
    nsp = NextSentenceHead(config.d_model)
    mlm.load_state_dict({k[len("mlm_head.") :]: v for k, v in heads.items() if k.startswith("mlm_head.")})
    nsp.load_state_dict({k[len("nsp_head.") :]: v for k, v in heads.items() if k.startswith("nsp_head.")})

    def logits() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            hidden = backbone(ids, segments, mask)
            return mlm(hidden, backbone.token_embedding.weight)[real], nsp(hidden)

    ours_mlm, ours_nsp = logits()
    assert_agree(ours_mlm, theirs.prediction_logits[real], "BERT MLM")
    assert_agree(ours_nsp, theirs.seq_relationship_logits, "BERT NSP")
    with attention_without_scale():  # negative control: both comparisons see the attention's scale
        unscaled_mlm, unscaled_nsp = logits()
    assert_differ(unscaled_mlm, theirs.prediction_logits[real])
    assert_differ(unscaled_nsp, theirs.seq_relationship_logits)


def test_early_bert_files_with_layernorm_gamma_and_beta_load(tmp_path):
    folder = tiny_bert(tmp_path, 120)
    tensors = load_file(folder / "model.safetensors")
    renamed = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in tensors.items()
    }
    save_file(renamed, folder / "model.safetensors")
    backbone, _ = load_backbone(folder)
    assert torch.equal(backbone.embeddings.norm.weight, tensors["bert.embeddings.LayerNorm.weight"])


# name -> (save a parity reference to a folder, the rotary base our config must read from it)
DECODERS = {
    "gpt2": (lambda folder: gpt2(folder, STD), None),
    "gpt2_sharded": (lambda folder: gpt2(folder, STD, max_shard_size="20KB"), None),
    "llama_untied": (lambda folder: llama(folder, 10000.0, tie=False, std=STD), 10000.0),
    "llama_tied_theta500k": (lambda folder: llama(folder, 500000.0, tie=True, std=STD), 500000.0),
}


@pytest.mark.parametrize(("make", "theta"), DECODERS.values(), ids=DECODERS.keys())
def test_decoder_logits_and_greedy_continuation_match(tmp_path, make, theta, monkeypatch):
    folder = make(tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    backbone, _ = load_backbone(folder)
    assert theta is None or (backbone.config.position == "rope" and backbone.config.rope_theta == theta)
    torch.manual_seed(3)
    ids = torch.randint(0, 100, (2, 16))
    prompt = ids[0, :5]
    with torch.no_grad():
        theirs = reference(ids).logits
        expected = reference.generate(
            prompt[None], max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=None
        )[0, 5:].tolist()

    def logits() -> torch.Tensor:
        with torch.no_grad():
            return backbone.logits(backbone(ids))

    assert_agree(logits(), theirs, f"decoder {folder.name}")
    assert_non_degenerate(expected)
    assert generate(backbone, [prompt.tolist()], 10) == [expected]
    with attention_without_scale():  # negative controls: the comparison sees the scale ...
        assert_differ(logits(), theirs)
    if theta is not None:  # ... and the direction of the rotation
        monkeypatch.setattr(rotary, "rotate_half", lambda x: -original_rotate_half(x))
        assert_differ(logits(), theirs)


@pytest.mark.parametrize("pickled", [False, True], ids=["safetensors", "pytorch_bin"])
def test_a_sharded_folder_is_read_from_its_index(tmp_path, pickled):
    folder = gpt2(tmp_path, max_shard_size="20KB")
    reference = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    if pickled:
        as_pytorch_bin(folder, shards=3)
    weights = "pytorch_model.bin" if pickled else "model.safetensors"
    assert (folder / f"{weights}.index.json").is_file() and not (folder / weights).exists()
    backbone, _ = load_backbone(folder)
    ids = torch.randint(0, 100, (1, 8))
    with torch.no_grad():
        assert max_diff(backbone.logits(backbone(ids)), reference(ids).logits) < TOLERANCE


def test_unsupported_architecture_missing_files_and_wrong_shapes_are_named(tmp_path):
    folder = gpt2(tmp_path / "gpt2")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "architectures": ["T5ForConditionalGeneration"]})
    )
    with pytest.raises(ConfigError, match=r"T5ForConditionalGeneration.*supported: Bert"):
        load_backbone(folder)
    (folder / "config.json").write_text(json.dumps({**config, "n_inner": 100}))
    with pytest.raises(
        ConfigError, match=r"h\.0\.mlp\.c_fc\.weight has shape \(32, 128\), this model needs \(32, 100\)"
    ):
        load_backbone(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="holds no weights"):
        load_backbone(folder)
    with pytest.raises(ConfigError, match=r"holds no config\.json"):
        load_backbone(tmp_path)
    with pytest.raises(ConfigError, match=r"holds no config\.json"):
        check_init_from(f"hf:{tmp_path}")  # what the run spec checks before any work


def test_unexpected_and_missing_tensors_are_listed(tmp_path):
    folder = gpt2(tmp_path)
    tensors = load_file(folder / "model.safetensors")
    save_file({**tensors, "transformer.h.0.attn.rotary.weight": torch.zeros(2)}, folder / "model.safetensors")
    with pytest.raises(ConfigError, match=r"no place for: h\.0\.attn\.rotary\.weight"):
        load_backbone(folder)
    del tensors["transformer.h.1.ln_2.bias"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ConfigError, match=r"lacks tensors a GPT-2 model needs: h\.1\.ln_2\.bias"):
        load_backbone(folder)


def test_a_folder_of_another_family_than_the_preset_is_refused(tmp_path):
    folder = gpt2(tmp_path)
    with pytest.raises(ConfigError, match="holds a GPT-2 model, but this run's model preset is a BertConfig"):
        derive_model_config({"_target_": "lmforge.models.BertConfig", "init_from": f"hf:{folder}"})


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


def test_rope_scaling_is_refused_naming_the_folder_and_the_key(tmp_path):
    folder = llama(tmp_path, 10000.0, tie=False)
    config = json.loads((folder / "config.json").read_text())
    scaling = {"rope_type": "linear", "factor": 2.0}
    (folder / "config.json").write_text(json.dumps({**config, "rope_scaling": scaling}))
    with pytest.raises(ConfigError, match=rf"{folder}/config\.json: .*rope_scaling=.*linear"):
        check_folder(f"hf:{folder}")
