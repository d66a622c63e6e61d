"""Hugging Face interoperability: tiny random HF models, saved to disk, give the same outputs in ours.

``transformers`` is the reference only (the ``oracle`` extra); the code under test never imports it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models

from lmforge.cli.export import export
from lmforge.cli.export import main as export_main
from lmforge.cli.merge import main as merge_main
from lmforge.cli.train import train
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.hf import derive_model_config, load_backbone, pretrained_tokenizer
from lmforge.io.init_from import check_init_from
from lmforge.models.decoding import generate
from lmforge.objectives import MaskedLMHead, NextSentenceHead
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.tasks import SequenceClassification

from .conftest import TOPICS, TOPICS_RUN

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference models are built here, never downloaded
transformers = pytest.importorskip(
    "transformers", reason="the Hugging Face reference is the `oracle` extra: pip install -e '.[oracle]'"
)

TOLERANCE = 1e-4
SENTENCES = ["Simmer the onions slowly.", "The night train to Vienna left late!", "unbelievable cafés"]


def sentences() -> list[str]:
    return [line.split(",", 1)[0] for line in TOPICS.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def wordpiece_folder(tmp_path_factory) -> Path:
    """A folder with a BERT vocab.txt (trained on the topics fixture) and nothing else yet."""
    folder = tmp_path_factory.mktemp("wordpiece")
    tokenizer = TokenizerSettings(kind="wordpiece", vocab_size=200, min_frequency=1).train(sentences())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab))
    return folder


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


@pytest.mark.parametrize("pickled", [False, True], ids=["safetensors", "pytorch_bin"])
def test_bert_mlm_and_nsp_logits_match(tmp_path, pickled):
    folder = tiny_bert(tmp_path, 120)
    reference = transformers.BertForPreTraining.from_pretrained(folder).eval()
    if pickled:
        as_pytorch_bin(folder)
    backbone, heads = load_backbone(folder)
    config = backbone.config
    mlm = MaskedLMHead(config.d_model, config.vocab_size, config.norm_eps)
    nsp = NextSentenceHead(config.d_model)
    mlm.load_state_dict({k[len("mlm_head.") :]: v for k, v in heads.items() if k.startswith("mlm_head.")})
    nsp.load_state_dict({k[len("nsp_head.") :]: v for k, v in heads.items() if k.startswith("nsp_head.")})
    ids = torch.randint(5, 120, (2, 12))
    segments = torch.cat((torch.zeros(2, 6), torch.ones(2, 6)), dim=1).long()
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0
    with torch.no_grad():
        theirs = reference(input_ids=ids, token_type_ids=segments, attention_mask=mask)
        hidden = backbone(ids, segments, mask)
        mlm_logits = mlm(hidden, backbone.token_embedding.weight)
        nsp_logits = nsp(hidden)
    real = mask.bool()
    assert max_diff(mlm_logits[real], theirs.prediction_logits[real]) < TOLERANCE
    assert max_diff(nsp_logits, theirs.seq_relationship_logits) < TOLERANCE


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


def gpt2(folder: Path, **options) -> Path:
    torch.manual_seed(1)
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder, **options)
    return folder


def llama(folder: Path, theta: float, tie: bool) -> Path:
    torch.manual_seed(2)
    config = transformers.LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        rope_theta=theta,
        tie_word_embeddings=tie,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


# name -> (save a tiny model to a folder, the rotary base our config must read from it)
DECODERS = {
    "gpt2": (lambda folder: gpt2(folder), None),
    "gpt2_sharded": (lambda folder: gpt2(folder, max_shard_size="20KB"), None),
    "llama_untied": (lambda folder: llama(folder, 10000.0, tie=False), 10000.0),
    "llama_tied_theta500k": (
        lambda folder: llama(folder, 500000.0, tie=True),
        500000.0,
    ),
}


@pytest.mark.parametrize(("make", "theta"), DECODERS.values(), ids=DECODERS.keys())
def test_decoder_logits_and_greedy_continuation_match(tmp_path, make, theta):
    folder = make(tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    backbone, _ = load_backbone(folder)
    assert theta is None or (backbone.config.position == "rope" and backbone.config.rope_theta == theta)
    ids = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        ours = backbone.logits(backbone(ids))
        theirs = reference(ids).logits
    assert max_diff(ours, theirs) < TOLERANCE
    prompt = ids[0, :5]
    with torch.no_grad():
        expected = reference.generate(
            prompt[None], max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=None
        )[0, 5:]
    assert generate(backbone, [prompt.tolist()], 10) == [expected.tolist()]


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


def test_wordpiece_vocab_txt_gives_hf_ids(wordpiece_folder):
    ours = pretrained_tokenizer(f"hf:{tiny_bert(wordpiece_folder, 200)}")
    reference = transformers.AutoTokenizer.from_pretrained(wordpiece_folder)  # reads vocab.txt
    assert isinstance(reference, transformers.BertTokenizer)
    for text in SENTENCES:
        assert ours.encode(text).ids == reference(text)["input_ids"]


def test_bpe_vocab_and_merges_give_hf_ids(tmp_path):
    trained = TokenizerSettings(kind="bpe", vocab_size=400, min_frequency=1).train(sentences())
    trained.model.save(str(tmp_path))  # vocab.json + merges.txt
    gpt2(tmp_path)
    ours = pretrained_tokenizer(f"hf:{tmp_path}")
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path)  # reads vocab.json + merges.txt
    assert isinstance(reference, transformers.GPT2Tokenizer)
    for text in SENTENCES:
        assert ours.encode(text).ids == reference(text)["input_ids"]


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


CLASSIFY = ["model=bert_tiny", *TOPICS_RUN, "trainer.max_steps=4", "trainer.val_check_interval=2"]


def test_fine_tune_an_hf_bert_with_lora_merge_export_and_reimport(
    make_cfg, wordpiece_folder, tmp_path, caplog
):
    folder = tiny_bert(wordpiece_folder, 200)
    cfg = make_cfg(*CLASSIFY, f"model.init_from=hf:{folder}", "peft=lora", tiny=False)
    with caplog.at_level(logging.INFO, logger="lmforge"):
        train(cfg)
    assert "model shape from" in caplog.text and "d_model 128 -> 32" in caplog.text
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    recorded = torch.load(ckpt, weights_only=True)["config"]["model"]  # the shape came from config.json
    assert recorded["d_model"] == 32 and recorded["n_layers"] == 2
    merge_main([str(ckpt), "--out", str(tmp_path / "merged")])
    export_main([str(tmp_path / "merged" / "merged.ckpt"), "--out", str(tmp_path / "export")])

    task, tokenizer, _ = load_task(str(ckpt))
    batch = tokenizer.encode_batch(["Simmer the onions", "A train to Vienna"])
    ids = torch.tensor([e.ids[:5] for e in batch])
    mask = torch.ones_like(ids)
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["architectures"] == ["BertForSequenceClassification"]
    assert exported["id2label"] == {"0": "cooking", "1": "travel"}
    reference = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "export").eval()
    backbone, heads = load_backbone(tmp_path / "export")
    with torch.no_grad():
        expected = task(ids, mask)
        theirs = reference(input_ids=ids, attention_mask=mask).logits
        hidden = backbone(ids, None, mask)
        pooled = torch.tanh(hidden[:, 0] @ heads["nsp_head.pooler.weight"].T + heads["nsp_head.pooler.bias"])
        again = pooled @ heads["classifier.weight"].T + heads["classifier.bias"]
    assert max_diff(expected, theirs) < TOLERANCE
    assert max_diff(expected, again) < TOLERANCE
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "export")
    assert hf_tokenizer(SENTENCES[0])["input_ids"] == tokenizer.encode(SENTENCES[0]).ids

    # the exported classifier (as many labels) and its pooler start a new fine-tune where this one ended
    model = {**recorded, "init_from": f"hf:{tmp_path / 'export'}"}
    labels = ["cooking", "travel"]
    restarted = SequenceClassification(model, {"classifier_dropout": 0.0}, {"lr": 1e-3}, labels)
    with torch.no_grad():
        assert max_diff(restarted.eval()(ids, mask), expected) < TOLERANCE

    # the LoRA checkpoint itself exports the same tensors (merged first)
    export_main([str(ckpt), "--out", str(tmp_path / "direct")])
    direct, merged = (load_file(tmp_path / name / "model.safetensors") for name in ("direct", "export"))
    assert direct.keys() == merged.keys() and all(torch.equal(direct[k], merged[k]) for k in direct)


def bpe_folder(folder: Path) -> Path:
    """vocab.json + merges.txt of a byte-level BPE (with <|endoftext|>) trained on the topics fixture."""
    folder.mkdir(parents=True, exist_ok=True)
    TokenizerSettings(kind="bpe", vocab_size=400, min_frequency=1).train(sentences()).model.save(str(folder))
    return folder


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_decoder_fine_tuned_from_hf_exports_to_what_hf_and_we_read_alike(family, make_cfg, tmp_path):
    folder = bpe_folder(tmp_path / "base")
    vocab = len(json.loads((folder / "vocab.json").read_text()))
    if family == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    else:
        config = transformers.LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=48,
            max_position_embeddings=64,
        )
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    preset = "gpt_tiny" if family == "gpt2" else "llama_tiny"
    steps = [
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "data.max_seq_len=32",
    ]
    cfg = make_cfg(f"model={preset}", *steps, f"model.init_from=hf:{folder}")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    export_main([str(ckpt), "--out", str(tmp_path / "export")])

    task, tokenizer, _ = load_task(str(ckpt))
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "export").eval()
    backbone, _ = load_backbone(tmp_path / "export")
    ids = torch.randint(0, vocab, (2, 12))
    with torch.no_grad():
        ours = task.backbone.logits(task.backbone(ids))
        theirs = reference(ids).logits
        again = backbone.logits(backbone(ids))
    assert max_diff(ours, theirs) < TOLERANCE
    assert torch.equal(ours, again)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "export")
    assert hf_tokenizer(SENTENCES[1])["input_ids"] == tokenizer.encode(SENTENCES[1]).ids


def test_a_folder_of_another_family_than_the_preset_is_refused(tmp_path):
    folder = gpt2(tmp_path)
    with pytest.raises(ConfigError, match="holds a GPT-2 model, but this run's model preset is a BertConfig"):
        derive_model_config({"_target_": "lmforge.models.BertConfig", "init_from": f"hf:{folder}"})


def test_a_bpe_tokenizer_without_an_end_of_text_token_is_refused_with_the_reason(tmp_path):
    folder = llama(tmp_path, 10000.0, tie=False)
    without = Tokenizer(models.BPE(vocab={"<s>": 0, "<unk>": 1, "a": 2}, merges=[]))
    without.save(str(folder / "tokenizer.json"))
    with pytest.raises(ConfigError, match=r"no end-of-text token \(<\|endoftext\|>, </s>, <\|end_of_text"):
        pretrained_tokenizer(f"hf:{folder}")


def test_a_llama_folder_whose_texts_end_with_eos_fine_tunes(make_cfg, tmp_path):
    """LLaMA's tokenizers end texts with </s>, not GPT-2's <|endoftext|>: the pipelines use it."""
    folder = tmp_path / "llama"
    folder.mkdir()
    tokenizer = TokenizerSettings(kind="bpe", vocab_size=300, min_frequency=1).train(sentences())
    vocab = json.loads(tokenizer.to_str())
    vocab["added_tokens"][0]["content"] = "</s>"  # the end-of-text token renamed as LLaMA names it
    vocab["model"]["vocab"]["</s>"] = vocab["model"]["vocab"].pop("<|endoftext|>")
    (folder / "tokenizer.json").write_text(json.dumps(vocab))
    config = transformers.LlamaConfig(
        vocab_size=len(vocab["model"]["vocab"]),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    loaded = pretrained_tokenizer(f"hf:{folder}")
    assert loaded.token_to_id("<|endoftext|>") is None and loaded.token_to_id("</s>") is not None
    cfg = make_cfg(*CLASSIFY, "model=llama_tiny", f"model.init_from=hf:{folder}", tiny=False)
    train(cfg)
    assert json.loads((Path(cfg.paths.output_dir) / "result.json").read_text())["status"] == "finished"
    datamodule = resolve(cfg).data.build()
    datamodule.use_tokenizer(loaded, str(folder))
    datamodule.setup()
    batch = next(iter(datamodule.train_dataloader()))
    last = batch["input_ids"][0, batch["attention_mask"][0].sum() - 1]
    assert last == loaded.token_to_id("</s>")  # the classifier reads the final </s>


def test_a_method_that_does_not_fold_is_not_exported(make_cfg, wordpiece_folder, tmp_path):
    cfg = make_cfg(
        *CLASSIFY, f"model.init_from=hf:{tiny_bert(wordpiece_folder, 200)}", "peft=prefix", tiny=False
    )
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="cannot be exported"):
        export(str(ckpt), tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_our_bert_pretraining_checkpoint_exports_to_bert_for_pretraining(pretrained_bert, tmp_path):
    export_main([str(pretrained_bert), "--out", str(tmp_path / "export")])
    task, _, _ = load_task(str(pretrained_bert))
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"]
    reference = transformers.BertForPreTraining.from_pretrained(tmp_path / "export").eval()
    ids = torch.randint(5, task.config.vocab_size, (2, 10))
    with torch.no_grad():
        hidden = task.backbone(ids)
        mlm = task.mlm_head(hidden, task.backbone.token_embedding.weight)
        theirs = reference(input_ids=ids)
    assert max_diff(mlm, theirs.prediction_logits) < TOLERANCE
    assert max_diff(task.nsp_head(hidden), theirs.seq_relationship_logits) < TOLERANCE
