"""Hugging Face interoperability in real runs: fine-tune or pretrain from an HF folder, merge, export, and
read the export back in transformers and in lmforge; a broken folder is refused before any data is read."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmforge.cli.export import export
from lmforge.cli.export import main as export_main
from lmforge.cli.merge import main as merge_main
from lmforge.cli.train import train
from lmforge.data.tokenized import TokenizedCorpus
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.hf import load_backbone, pretrained_tokenizer
from lmforge.io.tokenizers import PAD
from lmforge.models.feedforward import ACTIVATIONS
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.tasks import SequenceClassification
from tests.conftest import TINY, TOPICS_RUN, run_cli
from tests.support.hf import (
    HEAD_ACTIVATIONS,
    SENTENCES,
    TOLERANCE,
    as_pytorch_bin,
    assert_agree,
    assert_differ,
    bpe_folder,
    hf_logits,
    inputs,
    llama_config,
    max_diff,
    reference_bert,
    sentences,
    tiny_bert,
    transformers,
)

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


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_decoder_fine_tuned_from_hf_exports_to_what_hf_and_we_read_alike(family, make_cfg, tmp_path):
    folder = bpe_folder(tmp_path / "base")
    vocab = len(json.loads((folder / "vocab.json").read_text()))
    if family == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    else:
        config = llama_config(vocab)
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


def test_a_llama_folder_whose_texts_end_with_eos_fine_tunes(make_cfg, tmp_path):
    """LLaMA's tokenizers end texts with </s>, not GPT-2's <|endoftext|>: the pipelines use it."""
    folder = tmp_path / "llama"
    folder.mkdir()
    tokenizer = TokenizerSettings(kind="bpe", vocab_size=300, min_frequency=1).train(sentences())
    vocab = json.loads(tokenizer.to_str())
    vocab["added_tokens"][0]["content"] = "</s>"  # the end-of-text token renamed as LLaMA names it
    vocab["model"]["vocab"]["</s>"] = vocab["model"]["vocab"].pop("<|endoftext|>")
    (folder / "tokenizer.json").write_text(json.dumps(vocab))
    config = llama_config(len(vocab["model"]["vocab"]))
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
