"""Hugging Face tokenizer files (vocab.txt, vocab.json + merges.txt) give the ids transformers gives."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models

from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.hf import pretrained_tokenizer
from tests.support.hf import (
    SENTENCES,
    gpt2,
    llama,
    sentences,
    tiny_bert,
    transformers,
)


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


def test_a_bpe_tokenizer_without_an_end_of_text_token_is_refused_with_the_reason(tmp_path):
    folder = llama(tmp_path, 10000.0, tie=False)
    without = Tokenizer(models.BPE(vocab={"<s>": 0, "<unk>": 1, "a": 2}, merges=[]))
    without.save(str(folder / "tokenizer.json"))
    with pytest.raises(ConfigError, match=r"no end-of-text token \(<\|endoftext\|>, </s>, <\|end_of_text"):
        pretrained_tokenizer(f"hf:{folder}")
