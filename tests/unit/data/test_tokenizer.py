"""WordPiece and byte-level BPE training, the cache keyed by corpus and settings, loading a tokenizer.json."""

import logging

import pytest
from tokenizers import Tokenizer, models

from lmforge.data import MaskedLMDataModule
from lmforge.data.corpus import TextFilesCorpus
from lmforge.data.tokenized import sentence_texts
from lmforge.data.tokenizer import TokenizerSettings, train_bpe, train_wordpiece
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import END_OF_TEXT, SPECIAL_TOKENS, load_tokenizer
from tests.conftest import CORPUS

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A tokenizer splits words into pieces.",
    "Pieces that are frequent become whole tokens.",
] * 20


def test_specials_come_first_and_pairs_get_cls_and_sep():
    tokenizer = train_wordpiece(SENTENCES, TokenizerSettings(vocab_size=200, min_frequency=1))
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    encoding = tokenizer.encode("the fox", "the dog")
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens.count("[SEP]") == 2
    assert encoding.type_ids[-1] == 1 and encoding.type_ids[0] == 0


def test_round_trip_of_lowercased_text():
    tokenizer = train_wordpiece(SENTENCES, TokenizerSettings(vocab_size=300, min_frequency=1))
    text = "The lazy fox splits pieces."
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert tokenizer.decode(ids) == text.lower()


UNUSUAL = [
    "Café crème, naïve façade, Ångström, Straße, ĳ and Ωmega.",
    "Emoji: 🐍🚀 and 👩‍💻 (a joined sequence), flags 🇫🇷, and a lone 🎉.",
    "def f(x):\n\treturn {'k': x ** 2}  # tabs, newlines\r\n and   spaces",
    "中文字符, русский текст, العربية, and mixed-script ｗｉｄｅ letters.",
    "",
    "   leading and trailing spaces   ",
]


def test_byte_level_bpe_round_trips_any_text_exactly():
    tokenizer = train_bpe(SENTENCES, TokenizerSettings(kind="bpe", vocab_size=400, min_frequency=1))
    assert tokenizer.token_to_id(END_OF_TEXT) == 0
    for text in UNUSUAL:  # none of these characters occur in the training text
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert tokenizer.decode(ids) == text
        assert tokenizer.token_to_id("[UNK]") is None  # no unknown token: every byte has a piece


def test_sentences_tokenised_apart_give_the_ids_of_the_joined_document():
    tokenizer = train_bpe(SENTENCES, TokenizerSettings(kind="bpe", vocab_size=400, min_frequency=1))
    document = ["The quick brown fox jumps.", "A tokenizer splits words.", "Pieces become tokens!"]
    apart = [i for text in sentence_texts(document) for i in tokenizer.encode(text).ids]
    assert apart == tokenizer.encode(" ".join(document)).ids


def test_bpe_settings_ignore_the_wordpiece_only_keys_in_their_cache_key():
    a = TokenizerSettings(kind="bpe", vocab_size=400, lowercase=True).training_settings()
    b = TokenizerSettings(kind="bpe", vocab_size=400, lowercase=False, limit_alphabet=5).training_settings()
    assert a == b
    with pytest.raises(ConfigError, match="too small for bpe: at least 258"):
        TokenizerSettings(kind="bpe", vocab_size=100)
    with pytest.raises(ConfigError, match=r"data\.tokenizer\.kind='sentencepiece' is not one of"):
        TokenizerSettings(kind="sentencepiece")


def test_unknown_words_are_split_into_known_pieces():
    tokenizer = train_wordpiece(SENTENCES, TokenizerSettings(vocab_size=200, min_frequency=1))
    tokens = tokenizer.encode("foxes", add_special_tokens=False).tokens
    assert tokens[0] == "fox" and all(t.startswith("##") for t in tokens[1:])


def datamodule(tmp_path, **tokenizer):
    corpus = TextFilesCorpus([str(CORPUS / "workshop.txt"), str(CORPUS / "notes.jsonl")])
    settings = {"vocab_size": 300, **tokenizer}
    return MaskedLMDataModule(corpus, settings, str(tmp_path / "cache"), max_seq_len=48, batch_size=4)


def test_tokenizer_and_tokens_are_cached_and_reused(tmp_path, caplog, monkeypatch):
    first = datamodule(tmp_path)
    first.prepare_data()
    vocab = first.tokenizer.get_vocab()

    def must_not_train(*args, **kwargs):
        raise AssertionError("the cached tokenizer should have been reused")

    monkeypatch.setattr("lmforge.data.tokenizer.train_wordpiece", must_not_train)
    monkeypatch.setattr(TextFilesCorpus, "documents", must_not_train)
    with caplog.at_level(logging.INFO, logger="lmforge"):
        second = datamodule(tmp_path)
        second.prepare_data()
    assert second.tokenizer.get_vocab() == vocab
    assert "reusing the cached tokenizer" in caplog.text
    assert "reusing the token shards" in caplog.text


def test_other_settings_train_another_tokenizer(tmp_path):
    small, large = datamodule(tmp_path, vocab_size=200), datamodule(tmp_path, vocab_size=400)
    small.prepare_data()
    large.prepare_data()
    assert small.vocab_size == 200 and large.vocab_size > 200
    assert len(list((tmp_path / "cache").glob("text_files-*/wordpiece-*"))) == 2


def test_a_given_tokenizer_json_is_used(tmp_path):
    trained = datamodule(tmp_path)
    trained.prepare_data()
    path = tmp_path / "mine.json"
    trained.tokenizer.save(str(path))
    given = datamodule(tmp_path / "other", path=str(path))
    given.prepare_data()
    assert given.tokenizer.to_str() == trained.tokenizer.to_str()
    assert not list((tmp_path / "other" / "cache").glob("*/wordpiece-*"))


def test_a_tokenizer_without_bert_specials_is_refused(tmp_path):
    path = tmp_path / "plain.json"
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(path))
    with pytest.raises(ConfigError, match=r"lacks the special tokens \[PAD\], \[CLS\], \[SEP\], \[MASK\]"):
        load_tokenizer(path)


def test_a_missing_tokenizer_path_is_refused():
    with pytest.raises(ConfigError, match=r"data.tokenizer.path=nowhere.json does not exist"):
        TokenizerSettings(path="nowhere.json")
