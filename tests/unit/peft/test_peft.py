"""Tuning methods on BERT, GPT-2 and LLaMA backbones: what trains, identity at the start, merging,
cached decoding with prompts and prefixes, checkpoints, configs and parameter counts."""

import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from lmforge.errors import ConfigError
from lmforge.io.method_files import load_method, save_method
from lmforge.models import BertConfig, BertModel, DecoderModel, GPTConfig, LlamaConfig
from lmforge.models.decoding import generate
from lmforge.peft import PEFT_METHODS, apply_peft, merged_state_dict, parameter_counts
from lmforge.peft.adapter import VARIANTS as ADAPTER_VARIANTS
from lmforge.peft.base import FoldableLinear
from lmforge.peft.ia3 import TARGETS as IA3_TARGETS
from lmforge.peft.lora import TARGETS as LORA_TARGETS
from lmforge.peft.lora import LoRALinear
from tests.conftest import CONF

SHAPE = {"vocab_size": 97, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_seq_len": 48}
# Large initial weights: a tiny decoder at std 0.02 greedily repeats its last token, which would make
# the decoding comparisons below trivially true.
SHAPE["init_std"] = 0.5
QUIET = {"dropout": 0.0, "attention_dropout": 0.0}


def bert() -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig(**SHAPE, **QUIET)).eval()


def gpt() -> DecoderModel:
    torch.manual_seed(0)
    return DecoderModel(GPTConfig(**SHAPE, **QUIET)).eval()


def llama() -> DecoderModel:
    torch.manual_seed(0)
    return DecoderModel(LlamaConfig(**SHAPE, n_kv_heads=1)).eval()  # grouped-query: k, v narrower than q


def on_gpu(build):
    def build_on_gpu():
        return build().cuda()

    return build_on_gpu


def families(*builds) -> list:
    """Each backbone builder on the CPU and, where there is one, on a GPU too."""
    placed = [pytest.param(build, id=build.__name__) for build in builds]
    if torch.cuda.is_available():
        placed += [pytest.param(on_gpu(build), id=f"{build.__name__}-cuda") for build in builds]
    return placed


FAMILIES = families(bert, gpt, llama)
DECODERS = families(gpt, llama)
METHODS = list(PEFT_METHODS)
# Small hyper-parameters keep the file fast; LoRA on every target to reach every wrapped layer.
SETTINGS = {
    "adapter": {"bottleneck": 8},
    "prompt": {"n_virtual_tokens": 4},
    "ptuning": {"n_virtual_tokens": 4, "hidden": 16},
    "prefix": {"n_prefix_tokens": 3, "hidden": 16},
    "lora": {"rank": 4, "dropout": 0.0, "targets": ["q", "k", "v", "out", "up", "down"]},
}
# Which backbone parameters each method trains, by name.
OWN = {
    "none": lambda name: True,
    "frozen": lambda name: False,
    "bitfit": lambda name: name.endswith(".bias"),
    "adapter": lambda name: "_adapter." in name or "norm." in name,
    "prompt": lambda name: name.startswith("prompt."),
    "ptuning": lambda name: name.startswith("prompt."),
    "prefix": lambda name: name.startswith("prefix."),
    "lora": lambda name: ".lora." in name,
    "ia3": lambda name: ".ia3." in name,
}


def tuned(build, method: str, **overrides):
    """A backbone with ``method`` applied (its new modules drawn from seed 1), a linear head, the method."""
    backbone = build()
    head = torch.nn.Linear(SHAPE["d_model"], 3).to(backbone.token_embedding.weight)
    torch.manual_seed(1)
    settings = {"method": method, **SETTINGS.get(method, {}), **overrides}
    return backbone, head, apply_peft(backbone, [head], settings)


def batch(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (3, 10) and a mask whose first row ends in padding."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, SHAPE["vocab_size"], (3, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    return ids, mask


def hidden_states(backbone, ids, mask=None) -> torch.Tensor:
    device = backbone.token_embedding.weight.device
    ids, mask = ids.to(device), mask.to(device) if mask is not None else None
    if isinstance(backbone, BertModel):
        return backbone(ids, attention_mask=mask)
    return backbone(ids, mask)


def train(backbone, head, steps: int = 3) -> None:
    """A few AdamW steps on a classification loss over the hidden states, plus next-token loss for a
    decoder, so that every trainable tensor (an untied LM head too) gets a gradient."""
    ids, mask = (t.to(backbone.token_embedding.weight.device) for t in batch())
    labels = ids % 3
    parameters = [p for m in (backbone, head) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-2, weight_decay=0.0)
    backbone.train()
    for _ in range(steps):
        hidden = hidden_states(backbone, ids, mask)
        loss = F.cross_entropy(head(hidden).flatten(0, 1), labels.flatten())
        if isinstance(backbone, DecoderModel):
            logits = backbone.logits(hidden[:, :-1])
            loss = loss + F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    backbone.eval()


def snapshot(module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("build", FAMILIES)
def test_training_moves_the_method_parameters_and_leaves_the_rest_bitwise_unchanged(build, method):
    backbone, head, _ = tuned(build, method)
    trainable = {name for name, p in backbone.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in backbone.named_parameters() if OWN[method](name)}
    assert all(p.requires_grad for p in head.parameters())
    before, head_before = snapshot(backbone), snapshot(head)
    train(backbone, head)
    for name, p in backbone.named_parameters():
        if name in trainable:
            assert not torch.equal(p, before[name]), f"{name} did not move"
        else:
            assert torch.equal(p, before[name]), f"{name} is frozen but changed"
    assert all(not torch.equal(p, head_before[n]) for n, p in head.named_parameters())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("build", FAMILIES)
def test_the_method_follows_a_bfloat16_backbone_onto_its_device(build, method):
    backbone, head, _ = tuned(lambda: build().to(torch.bfloat16), method)
    reference = backbone.token_embedding.weight
    for name, tensor in [*backbone.named_parameters(), *backbone.named_buffers()]:
        assert (tensor.device, tensor.dtype) == (reference.device, torch.bfloat16), name
    train(backbone, head, steps=1)
    hidden = hidden_states(backbone, *batch())
    assert hidden.dtype == torch.bfloat16 and hidden.isfinite().all()


# Each place a method that starts as the identity can act, alone: (method, its settings)
IDENTITY_AT_START = {
    **{f"lora-{target}": ("lora", {"targets": [target]}) for target in LORA_TARGETS},
    **{f"ia3-{target}": ("ia3", {"targets": [target]}) for target in IA3_TARGETS},
    **{f"adapter-{variant}": ("adapter", {"variant": variant}) for variant in ADAPTER_VARIANTS},
}


@pytest.mark.parametrize("case", IDENTITY_AT_START)
@pytest.mark.parametrize("build", FAMILIES)
def test_methods_that_start_as_the_identity_give_the_base_outputs_at_every_target(build, case):
    method, settings = IDENTITY_AT_START[case]
    ids, mask = batch()
    base = hidden_states(build(), ids, mask)
    backbone, _, _ = tuned(build, method, **settings)
    assert backbone.num_parameters(trainable_only=True) > 0  # the target was there to wrap
    tuned_states = hidden_states(backbone, ids, mask)
    assert torch.equal(tuned_states, base)
    tuned_states.sum().backward()  # and it trains from there, wherever it sits
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)


@pytest.mark.parametrize("method", ["lora", "ia3"])
@pytest.mark.parametrize("build", FAMILIES)
def test_merged_outputs_equal_unmerged_ones_and_unmerge_restores_the_weights(build, method):
    backbone, head, tuning = tuned(build, method)
    train(backbone, head)
    ids, mask = batch(seed=3)
    unmerged = hidden_states(backbone, ids, mask)
    weights = {n: p.detach().clone() for n, p in backbone.named_parameters() if not p.requires_grad}
    tuning.merge()
    changed = {n for n, p in backbone.named_parameters() if n in weights and not torch.equal(p, weights[n])}
    wrapped = {
        f"{n}.{k}"
        for n, m in backbone.named_modules()
        if isinstance(m, FoldableLinear)
        for k in ("weight", "bias")
    }
    assert changed and changed <= wrapped
    torch.testing.assert_close(hidden_states(backbone, ids, mask), unmerged, atol=1e-5, rtol=0)
    tuning.unmerge()
    for name, p in backbone.named_parameters():
        if name in weights:
            torch.testing.assert_close(p, weights[name], atol=1e-6, rtol=0)
    torch.testing.assert_close(hidden_states(backbone, ids, mask), unmerged, atol=1e-5, rtol=0)


def test_lora_adds_alpha_over_rank_times_b_a_x_to_its_rows():
    """Hu et al. 2021, eq. 4: h = W x + (alpha / r) B A x, computed by hand on a fused q/k/v layer."""
    torch.manual_seed(0)
    base = torch.nn.Linear(8, 12)
    layer = LoRALinear(base, {"q": slice(0, 4), "v": slice(8, 12)}, rank=2, alpha=6.0, dropout=0.0)
    for update in layer.lora.values():
        torch.nn.init.normal_(update.b)
    x = torch.randn(3, 8)
    expected = base(x).detach().clone()
    for name, rows in (("q", slice(0, 4)), ("v", slice(8, 12))):
        update = layer.lora[name]
        expected[:, rows] += (6.0 / 2) * x @ update.a.T @ update.b.T
    torch.testing.assert_close(layer(x), expected)


def test_lora_on_q_and_v_changes_only_their_rows_of_the_fused_projection():
    backbone, head, _ = tuned(llama, "lora", targets=["q", "v"])
    train(backbone, head)
    for block in backbone.blocks:
        qkv = block.attention.qkv
        weight, _ = qkv.folded()
        change = (weight - qkv.weight).abs().sum(dim=1)
        rows = block.attention.projection_rows
        assert change[rows["q"]].gt(0).all() and change[rows["v"]].gt(0).all()
        assert change[rows["k"]].eq(0).all()
        assert rows["k"].stop - rows["k"].start == SHAPE["d_model"] // SHAPE["n_heads"]  # one kv head


@pytest.mark.parametrize("method", ["prompt", "ptuning", "prefix"])
@pytest.mark.parametrize("build", DECODERS)
def test_prompted_decoders_continue_the_same_with_and_without_the_cache(build, method):
    backbone, _, _ = tuned(build, method)
    prompts = [[5, 6, 7, 8, 9], [10, 11]]  # left-padded into one batch
    cached = generate(backbone, prompts, 12, use_cache=True)
    assert cached == generate(backbone, prompts, 12, use_cache=False)
    assert cached == [generate(backbone, [p], 12)[0] for p in prompts]
    assert cached != generate(build(), prompts, 12)  # the method does change the model


class WordIds:
    """A tokenizer stand-in: the text is its token ids, separated by spaces."""

    def encode(self, text: str, add_special_tokens: bool = True) -> SimpleNamespace:
        return SimpleNamespace(ids=[int(word) for word in text.split()])


TEXT = {"init": "text", "init_text": "11 12 13"}  # four virtual tokens: 11 12 13 11
VIRTUAL_IDS = [11, 12, 13, 11]


@pytest.mark.parametrize("build", DECODERS)
def test_a_prompt_of_vocabulary_rows_continues_as_those_tokens_would(build):
    """Virtual tokens copied from the vocabulary are those tokens: positions, masks and the cache must
    treat them as the first tokens of every row."""
    backbone = build()
    apply_peft(backbone, [], {"method": "prompt", "n_virtual_tokens": 4, **TEXT}, tokenizer=WordIds())
    prompts = [[5, 6, 7, 8, 9], [10, 11]]
    spelled_out = generate(build(), [VIRTUAL_IDS + p for p in prompts], 12)
    assert generate(backbone, prompts, 12, use_cache=True) == spelled_out
    assert generate(backbone, prompts, 12, use_cache=False) == spelled_out


def test_a_bert_prompt_of_vocabulary_rows_gives_the_states_of_those_tokens():
    backbone = bert()
    apply_peft(backbone, [], {"method": "prompt", "n_virtual_tokens": 4, **TEXT}, tokenizer=WordIds())
    ids, mask = batch()
    full_ids = torch.cat((torch.tensor([VIRTUAL_IDS] * 3), ids), dim=1)
    full_mask = torch.cat((torch.ones(3, 4, dtype=mask.dtype), mask), dim=1)
    expected = bert()(full_ids, attention_mask=full_mask)[:, 4:]
    torch.testing.assert_close(backbone(ids, attention_mask=mask), expected, atol=1e-5, rtol=0)


def test_prompt_text_init_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="none was given to apply_peft") as error:
        apply_peft(gpt(), [], {"method": "prompt", **TEXT})
    assert error.value.key == "peft.init"


def test_virtual_tokens_count_against_the_position_table():
    backbone, _, _ = tuned(gpt, "prompt")
    with pytest.raises(ValueError, match="4 virtual tokens of prompt tuning"):
        backbone(torch.ones(1, SHAPE["max_seq_len"] - 2, dtype=torch.long))


@pytest.mark.parametrize("method", ["prefix", "ptuning"])
@pytest.mark.parametrize("build", FAMILIES)
def test_folding_the_reparameterisation_keeps_the_outputs(build, method):
    backbone, head, tuning = tuned(build, method)
    train(backbone, head)
    ids, mask = batch(seed=3)
    before = hidden_states(backbone, ids, mask)
    tuning.fold()
    assert not any("mlp" in name for name, _ in backbone.named_parameters())
    torch.testing.assert_close(hidden_states(backbone, ids, mask), before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("build", FAMILIES)
def test_a_saved_method_reloads_onto_a_fresh_base_with_the_same_outputs(build, method, tmp_path):
    backbone, head, tuning = tuned(build, method)
    train(backbone, head)
    save_method(tmp_path, backbone, tuning, base="base.safetensors")
    fresh, _, _ = tuned(build, method)
    torch.manual_seed(5)  # the fresh method's own tensors differ until loaded
    config = load_method(tmp_path, fresh)
    assert config["method"] == method and config["base"] == "base.safetensors"
    ids, mask = batch(seed=3)
    assert torch.equal(hidden_states(fresh, ids, mask), hidden_states(backbone, ids, mask))


def test_loading_refuses_a_checkpoint_of_another_method_or_shape(tmp_path):
    backbone, _, tuning = tuned(gpt, "lora", rank=4)
    save_method(tmp_path, backbone, tuning)
    with pytest.raises(ConfigError, match=r"peft.method=lora checkpoint that does not fit.*missing"):
        load_method(tmp_path, tuned(gpt, "ia3")[0])
    with pytest.raises(ConfigError, match=r"\(4, 32\) in the checkpoint and \(2, 32\) in the model"):
        load_method(tmp_path, tuned(gpt, "lora", rank=2)[0])


@pytest.mark.parametrize("method", ["none", "bitfit", "lora", "ia3"])
@pytest.mark.parametrize("build", FAMILIES)
def test_a_merged_state_dict_loads_into_a_plain_backbone(build, method):
    backbone, head, tuning = tuned(build, method)
    train(backbone, head)
    plain = build()
    plain.load_state_dict(merged_state_dict(backbone, tuning))  # strict: exactly the plain keys
    ids, mask = batch(seed=3)
    torch.testing.assert_close(
        hidden_states(plain, ids, mask), hidden_states(backbone, ids, mask), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("method", ["adapter", "prompt", "ptuning", "prefix"])
def test_methods_that_change_the_computation_cannot_be_merged(method):
    backbone, _, tuning = tuned(gpt, method)
    assert not tuning.mergeable
    with pytest.raises(ValueError, match=f"peft.method={method} cannot be folded"):
        merged_state_dict(backbone, tuning)
    with pytest.raises(ValueError, match="cannot be folded"):
        tuning.merge()


@pytest.mark.parametrize("path", sorted((CONF / "peft").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_peft_config_builds_its_method(path):
    settings = OmegaConf.to_container(OmegaConf.load(path))
    assert settings["method"] == path.stem
    backbone, head = gpt(), torch.nn.Linear(SHAPE["d_model"], 3)
    tuning = apply_peft(backbone, [head], settings)
    assert tuning.name == path.stem and tuning.lr == settings["lr"]
    assert path.stem == "none" or tuning.lr is not None


def test_every_method_has_a_config():
    assert {p.stem for p in (CONF / "peft").glob("*.yaml")} == set(PEFT_METHODS)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"method": "loRA"}, "peft.method"),
        ({"method": "lora", "rank": 0}, "peft.rank"),
        ({"method": "lora", "targets": ["q", "gate"]}, "peft.targets"),
        ({"method": "lora", "alpha": -1}, "peft.alpha"),
        ({"method": "lora", "lr": 0}, "peft.lr"),
        ({"method": "prompt", "n_virtual_tokens": 0}, "peft.n_virtual_tokens"),
        ({"method": "prompt", "init": "text"}, "peft.init_text"),
        ({"method": "ptuning", "encoder": "gru"}, "peft.encoder"),
        ({"method": "prefix", "n_prefix_tokens": -2}, "peft.n_prefix_tokens"),
        ({"method": "adapter", "variant": "parallel"}, "peft.variant"),
        ({"method": "ia3", "targets": ["q"]}, "peft.targets"),
        ({"method": "ia3", "rank": 4}, "peft.rank"),  # not a setting of IA3
    ],
)
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigError) as error:
        apply_peft(gpt(), [], settings)
    assert error.value.key == key and key in str(error.value)


@pytest.mark.parametrize("build", DECODERS)
def test_lora_on_q_and_v_adds_rank_times_fan_in_plus_fan_out_per_layer(build):
    base = build()
    backbone, _, _ = tuned(build, "lora", rank=4, targets=["q", "v"])
    config, r = backbone.config, 4
    d, dq, dv = config.d_model, config.d_model, config.kv_heads * config.head_dim
    added = config.n_layers * (r * (d + dq) + r * (d + dv))
    assert backbone.num_parameters(trainable_only=True) == added
    assert backbone.num_parameters() == base.num_parameters() + added
    assert parameter_counts(backbone) == (added, base.num_parameters() + added)


def test_frozen_keeps_only_the_heads_trainable_even_a_tied_lm_head():
    backbone = gpt()
    apply_peft(backbone, [backbone.tokens], {"method": "frozen"})
    assert [n for n, p in backbone.named_parameters() if p.requires_grad] == ["tokens.weight"]


def test_bitfit_on_a_backbone_without_biases_warns_that_only_the_heads_train(caplog):
    with caplog.at_level(logging.WARNING):
        tuned(llama, "bitfit")
    assert "no bias terms" in caplog.text


def test_a_method_is_applied_once():
    backbone, _, _ = tuned(gpt, "lora")
    with pytest.raises(ValueError, match="already holds a tuning method"):
        apply_peft(backbone, [], {"method": "ia3"})
