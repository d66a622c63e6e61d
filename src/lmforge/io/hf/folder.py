"""Reading a Hugging Face model folder from disk: ``config.json``, the weights and the tokenizer.

Only local folders are read (never the hub): ``model.init_from=hf:/path/to/folder``. The weights come
from ``model.safetensors``, sharded safetensors listed in ``model.safetensors.index.json``, or
``pytorch_model.bin`` (read with ``weights_only=True``, so a pickle cannot run code).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from lmforge.errors import ConfigError
from lmforge.io.tokenizers import CLS, END_OF_TEXT_TOKENS, SEP, UNK, end_of_text_token

PREFIX = "hf:"
KEY = "model.init_from"


def is_hf(path: str | None) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def folder_of(path: str | Path) -> Path:
    """The folder that ``hf:<folder>`` (or a bare folder) names, checked to hold a ``config.json``."""
    text = str(path)
    folder = Path(text[len(PREFIX) :] if text.startswith(PREFIX) else text).expanduser()
    if not folder.is_dir():
        raise ConfigError(KEY, f"{KEY}={text}: {folder} is not a folder (give hf:<a local model folder>)")
    if not (folder / "config.json").is_file():
        raise ConfigError(
            KEY, f"{KEY}={text}: {folder} holds no config.json: is it a Hugging Face model folder?"
        )
    return folder


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(KEY, f"cannot read {path}: {error}") from error


def read_config(folder: Path) -> dict[str, Any]:
    return read_json(folder / "config.json")


def read_weights(folder: Path, shapes_only: bool = False) -> dict[str, torch.Tensor]:
    """Every tensor the folder holds, by its Hugging Face name, on the CPU.

    Safetensors first (no code can hide in them), then the pickled ``pytorch_model.bin``; either may be
    sharded, with an ``.index.json`` whose ``weight_map`` names the shards. ``shapes_only``: tensors on
    the meta device, from safetensors' headers or a memory-mapped ``.bin``, so every file is checked to
    be whole and readable without reading its data.
    """
    for weights, read in (("model.safetensors", read_safetensors), ("pytorch_model.bin", read_pickled)):
        if (folder / weights).is_file():
            return read(folder / weights, shapes_only)
        index = folder / f"{weights}.index.json"
        if index.is_file():
            shards = sorted(set(read_json(index).get("weight_map", {}).values()))
            missing = [name for name in shards if not (folder / name).is_file()]
            if not shards or missing:
                listed = ", ".join(missing) or "(none listed)"
                raise ConfigError(KEY, f"{index} lists shards that are not in {folder}: {listed}")
            state: dict[str, torch.Tensor] = {}
            for name in shards:
                state.update(read(folder / name, shapes_only))
            return state
    raise ConfigError(
        KEY,
        f"{folder} holds no weights: expected model.safetensors or pytorch_model.bin, or either one's "
        ".index.json with its shards",
    )


def as_meta(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: torch.empty(tensor.shape, device="meta") for name, tensor in state.items()}


def read_safetensors(path: Path, shapes_only: bool = False) -> dict[str, torch.Tensor]:
    try:
        if not shapes_only:
            return load_file(path)
        with safe_open(path, "pt") as file:  # checks that the header covers the whole file
            names = file.keys()  # a safe_open handle is not iterable
            return {name: torch.empty(file.get_slice(name).get_shape(), device="meta") for name in names}
    except (SafetensorError, OSError) as error:
        raise ConfigError(KEY, f"{path} is truncated or corrupt ({error})") from error


def read_pickled(path: Path, shapes_only: bool = False) -> dict[str, torch.Tensor]:
    """A ``torch.save``d state dict, read with ``weights_only=True`` so a pickle cannot run code."""
    try:  # memory-mapped for shapes only (only the zip format, torch >= 1.6, can be)
        state = torch.load(
            path, map_location="cpu", weights_only=True, mmap=shapes_only and zipfile.is_zipfile(path)
        )
    except pickle.UnpicklingError as error:  # objects beyond tensors, or a pickle cut short
        lines = str(error).splitlines() or [""]
        found = next((line for line in lines if "GLOBAL" in line), lines[0]).split(" Please")[0]
        raise ConfigError(
            KEY,
            f"cannot read {path}: it is corrupt or holds more than tensors ({found.strip()}), and lmforge "
            "only loads files that cannot run code (torch.load(weights_only=True))",
        ) from None
    except Exception as error:  # torch: "[Errno 22] Invalid argument", "failed finding central directory"
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(KEY, f"{path} is truncated or corrupt ({first})") from error
    return as_meta(state) if shapes_only else state


def read_tokenizer(folder: Path) -> Tokenizer:
    """The folder's tokenizer: ``tokenizer.json``, else BERT's ``vocab.txt`` (WordPiece) or GPT-2's
    ``vocab.json`` + ``merges.txt`` (byte-level BPE), rebuilt as the HF fast tokenizers build them."""
    if (folder / "tokenizer.json").is_file():
        try:
            return Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as error:  # the Rust side raises a bare Exception for any parse error
            raise ConfigError(KEY, f"{folder}/tokenizer.json is not a tokenizer file ({error})") from error
    if (folder / "vocab.txt").is_file():
        return wordpiece_from_vocab(folder)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        tokenizer = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        return tokenizer
    raise ConfigError(
        KEY,
        f"{folder} holds no tokenizer: expected tokenizer.json, vocab.txt (WordPiece) or vocab.json + "
        "merges.txt (byte-level BPE)",
    )


def wordpiece_from_vocab(folder: Path) -> Tokenizer:
    """BERT's WordPiece from ``vocab.txt``; lower-cases unless ``tokenizer_config.json`` says
    ``do_lower_case: false`` (HF's default is true, as for ``bert-base-uncased``)."""
    settings_path = folder / "tokenizer_config.json"
    settings = read_json(settings_path) if settings_path.is_file() else {}
    lowercase = bool(settings.get("do_lower_case", True))
    tokenizer = Tokenizer(models.WordPiece.from_file(str(folder / "vocab.txt"), unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    ids = {token: tokenizer.token_to_id(token) for token in (CLS, SEP)}
    if None in ids.values():
        raise ConfigError(KEY, f"{folder}/vocab.txt lacks {CLS} or {SEP}: not a BERT vocabulary")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, ids[CLS]), (SEP, ids[SEP])],
    )
    return tokenizer


def check_end_of_text(tokenizer: Tokenizer, folder: Path) -> None:
    """Our causal-LM and classification pipelines end texts with the vocabulary's end-of-text token
    (GPT-2's ``<|endoftext|>``, LLaMA's ``</s>`` or ``<|end_of_text|>``): a BPE tokenizer needs one."""
    if json.loads(tokenizer.to_str())["model"]["type"] == "BPE" and end_of_text_token(tokenizer) is None:
        raise ConfigError(
            KEY,
            f"the tokenizer of {folder} has no end-of-text token ({', '.join(END_OF_TEXT_TOKENS)}): our "
            "data pipelines end texts with it, so train.py cannot fine-tune with it. Its weights still "
            "load with lmforge.io.hf.load_backbone",
        )
