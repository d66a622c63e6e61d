"""Hugging Face reference models for the parity tests: tiny ``transformers`` models saved to disk, and
the comparisons. ``transformers`` is the reference only (the ``oracle`` extra); lmforge never imports it.

The parity references have large random weights (std 0.5, every tensor perturbed): attention is far
from uniform, the MLM head's pre-activations spread over the range where GELU, its tanh approximation
and ReLU differ, and a decoder's greedy continuation is not one token repeated, so a wrong scale,
activation, rotation or dropped tensor shows. The parity tests also run a negative control: the same
comparison with the bug put back (``attention_without_scale``, ...) must fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from lmforge.data.tokenizer import TokenizerSettings
from lmforge.models import attention
from tests.conftest import sentences

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference models are built here, never downloaded
transformers = pytest.importorskip(
    "transformers", reason="the Hugging Face reference is the `oracle` extra: pip install -e '.[oracle]'"
)

TOLERANCE = 1e-4  # largest |ours - theirs| of a logit, for the small-weight models
ABSOLUTE = 1e-4  # the same, for the parity references
RELATIVE = 1e-5  # and over the largest |logit| (about 10 at this weight size)
STD = 0.5  # the parity references' weights
SENTENCES = ["Simmer the onions slowly.", "The night train to Vienna left late!", "unbelievable cafés"]
# config.json's hidden_act -> the activation that would be wrong in its place (the negative control)
HEAD_ACTIVATIONS = {"gelu": "gelu_tanh", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "gelu"}


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Every tensor moved off its initial value (biases off 0, LayerNorms off 1), so its mapping shows."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * STD * 0.2)
    return model


def tiny_bert(folder: Path, vocab_size: int) -> Path:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = transformers.BertForPreTraining(config)
    model.save_pretrained(folder)
    return folder


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def as_pytorch_bin(folder: Path, shards: int = 1) -> Path:
    """Rewrite a folder's safetensors as ``pytorch_model.bin`` (or ``shards`` of it with an index), the
    older layout: transformers 5 only writes safetensors."""
    files = sorted(folder.glob("model*.safetensors"))
    state = {name: tensor for path in files for name, tensor in load_file(path).items()}
    for path in [*files, *folder.glob("model.safetensors.index.json")]:
        path.unlink()
    if shards == 1:
        torch.save(state, folder / "pytorch_model.bin")
        return folder
    names = sorted(state)
    weight_map = {}
    for index in range(shards):
        shard = f"pytorch_model-{index + 1:05d}-of-{shards:05d}.bin"
        part = names[index::shards]
        torch.save({name: state[name] for name in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


def gpt2(folder: Path, std: float | None = None, **options) -> Path:
    """A GPT-2 of 2 layers, width 32, vocabulary 100; ``std``: a parity reference of that weight size."""
    torch.manual_seed(1)
    config = transformers.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=std or 0.02
    )
    model = transformers.GPT2LMHeadModel(config)
    (perturbed(model) if std else model).save_pretrained(folder, **options)
    return folder


def llama_config(vocab_size: int = 100, **settings) -> transformers.LlamaConfig:
    """A LLaMA of 2 layers, width 32, 4 query and 2 key/value heads, ``settings`` on top."""
    return transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        **settings,
    )


def llama(folder: Path, theta: float, tie: bool, std: float | None = None) -> Path:
    """``llama_config``'s LLaMA, vocabulary 100; ``std`` as for ``gpt2``."""
    torch.manual_seed(2)
    config = llama_config(rope_theta=theta, tie_word_embeddings=tie, initializer_range=std or 0.02)
    model = transformers.LlamaForCausalLM(config)
    (perturbed(model) if std else model).save_pretrained(folder)
    return folder


def bpe_folder(folder: Path) -> Path:
    """vocab.json + merges.txt of a byte-level BPE (with <|endoftext|>) trained on the topics fixture."""
    folder.mkdir(parents=True, exist_ok=True)
    TokenizerSettings(kind="bpe", vocab_size=400, min_frequency=1).train(sentences()).model.save(str(folder))
    return folder


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
    perturbed(transformers.BertForPreTraining(config)).save_pretrained(folder)
    return folder


def inputs(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(5, vocab_size, (2, 12))
    segments = torch.cat((torch.zeros(2, 6), torch.ones(2, 6)), dim=1).long()
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0
    return ids, segments, mask


def hf_bert(folder: Path, ids, segments, mask):
    """transformers' MLM and NSP logits from ``folder``, which must hold every tensor it reads (none
    made up), with attention far from uniform (the premise of the parity tests)."""
    reference, loading = transformers.BertForPreTraining.from_pretrained(
        folder, attn_implementation="eager", output_loading_info=True
    )
    assert not loading["missing_keys"] and not loading["unexpected_keys"], loading
    reference.eval()
    with torch.no_grad():
        out = reference(input_ids=ids, token_type_ids=segments, attention_mask=mask, output_attentions=True)
    # uniform attention would give each of the 12 keys 1/12: the largest share must be far above that
    assert min(layer[0].amax(-1).mean().item() for layer in out.attentions) > 0.5
    return out


def hf_logits(folder: Path, ids, segments, mask) -> torch.Tensor:
    """transformers' MLM logits from ``folder`` (see ``hf_bert``)."""
    return hf_bert(folder, ids, segments, mask).prediction_logits


def disagreement(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    """Largest absolute difference, and the same over the largest |logit|."""
    diff = max_diff(ours, theirs)
    return diff, diff / theirs.abs().max().item()


def assert_agree(ours: torch.Tensor, theirs: torch.Tensor, case: str) -> None:
    absolute, relative = disagreement(ours, theirs)
    print(f"{case}: logits max |diff| {absolute:.1e}, relative {relative:.1e}")  # shown by pytest -rP
    assert absolute < ABSOLUTE and relative < RELATIVE, (absolute, relative)


def assert_differ(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """The negative control: at least 5 times the tolerance (exact GELU against its tanh form gives
    8e-5 to 1.3e-4 here, ReLU against GELU, a dropped decoder or an unscaled attention 1e-2 or more)."""
    assert disagreement(ours, theirs)[1] > 5 * RELATIVE


@contextmanager
def attention_without_scale() -> Iterator[None]:
    """Our attention as softmax(Q K^T) V, the 1/sqrt(d_k) left out: a negative control."""
    sdpa = F.scaled_dot_product_attention
    unscaled = SimpleNamespace(
        scaled_dot_product_attention=lambda *args, **kwargs: sdpa(*args, **kwargs, scale=1.0)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(attention, "F", unscaled)
        yield
