"""A file that would run code when loaded is refused, unrun, on every path that loads one: resuming
(``ckpt_path``), ``model.init_from`` (the run spec, its tokenizer, its weights), eval, generate, merge,
export and consolidate; as a checkpoint file, and as a distributed checkpoint folder (its ``meta.pt``,
its ``.metadata`` index, a non-tensor item of its shards); and a Hugging Face ``pytorch_model.bin``.

Each malicious file, once unpickled, touches a marker file: the refusal must come first, naming what
the file holds, in one line.
"""

from __future__ import annotations

import copy
import functools
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from omegaconf import DictConfig, OmegaConf

from lmforge.cli.eval import evaluate
from lmforge.cli.export import export
from lmforge.cli.generate import run as generate
from lmforge.cli.merge import merge
from lmforge.errors import ConfigError
from lmforge.io.checkpoints import DISTRIBUTED_METADATA, read_checkpoint
from lmforge.io.consolidate import consolidate
from lmforge.io.hf import check_folder, load_backbone
from lmforge.io.init_from import load_pretrained, pretrained_tokenizer
from lmforge.models import BertConfig, build_backbone
from lmforge.run.spec import resolve
from tests.conftest import CONF, TINY, compose_config
from tests.support.unsafe import RunsCode, unsafe_checkpoint

MARKER = "code-ran"
MODEL = {
    "_target_": "lmforge.models.BertConfig",
    "vocab_size": 50,
    "d_model": 32,
    "n_heads": 2,
    "n_layers": 1,
}


def distributed(folder: Path, meta: dict, shards: dict) -> Path:
    """A folder as strategy=fsdp writes one: ``meta.pt`` and the shards torch's DCP writes."""
    dcp.save({"state_dict": {"backbone.w": torch.zeros(4, 2)}, **shards}, checkpoint_id=str(folder))
    torch.save(
        {"hyper_parameters": {"model": MODEL}, "global_step": 3, **meta}, folder / DISTRIBUTED_METADATA
    )
    return folder


def index_that_runs_code(tmp: Path) -> Path:
    folder = distributed(tmp / "index", {}, {})
    (folder / ".metadata").write_bytes(pickle.dumps(RunsCode(tmp / MARKER)))
    return folder


# the malicious file (or folder) of each kind, written into tmp
FILES: dict[str, Callable[[Path], Path]] = {
    "checkpoint file": lambda tmp: unsafe_checkpoint(tmp / "evil.ckpt", tmp / MARKER),
    "distributed meta.pt": lambda tmp: distributed(tmp / "meta", {"payload": RunsCode(tmp / MARKER)}, {}),
    "distributed .metadata": index_that_runs_code,
    "distributed shard item": lambda tmp: distributed(tmp / "item", {}, {"extra": RunsCode(tmp / MARKER)}),
}


@functools.cache
def composed() -> DictConfig:
    return compose_config(TINY, Path("unused"))


def run_spec(key: str) -> Callable[[str, Path], object]:
    def resolve_with(path: str, tmp: Path) -> object:
        cfg = copy.deepcopy(composed())
        cfg.paths.output_dir, cfg.paths.data_dir = str(tmp / "run"), str(tmp / "data")
        OmegaConf.update(cfg, key, path)
        return resolve(cfg)

    return resolve_with


def generate_settings(path: str) -> DictConfig:
    cfg = OmegaConf.load(CONF / "generate.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key)
    cfg.ckpt_path, cfg.prompt = path, "The"
    return cfg


# every path that loads a checkpoint: (how it is called, the key its refusal names)
PATHS: dict[str, tuple[Callable[[str, Path], object], str]] = {
    "read_checkpoint": (lambda path, tmp: read_checkpoint(path), "ckpt_path"),
    "resume": (run_spec("ckpt_path"), "ckpt_path"),
    "init_from, run spec": (run_spec("model.init_from"), "model.init_from"),
    "init_from, tokenizer": (lambda path, tmp: pretrained_tokenizer(path), "model.init_from"),
    "init_from, weights": (
        lambda path, tmp: load_pretrained(
            path,
            BertConfig(**{k: v for k, v in MODEL.items() if k != "_target_"}),
            {"backbone.": build_backbone(BertConfig(vocab_size=50, d_model=32, n_heads=2, n_layers=1))},
        ),
        "model.init_from",
    ),
    "eval": (lambda path, tmp: evaluate(OmegaConf.create({"ckpt_path": path, "split": "test"})), "ckpt_path"),
    "generate": (lambda path, tmp: generate(generate_settings(path)), "ckpt_path"),
    "merge": (lambda path, tmp: merge(path, tmp / "merged"), "ckpt_path"),
    "export": (lambda path, tmp: export(path, tmp / "export"), "ckpt_path"),
}
CASES = [
    *((path, kind) for path in PATHS for kind in FILES),
    *(("consolidate", kind) for kind in FILES if kind.startswith("distributed")),
]
PATHS["consolidate"] = (lambda path, tmp: consolidate(path, tmp / "model.safetensors"), "ckpt_path")


@pytest.mark.parametrize(("path", "kind"), CASES, ids=[f"{path}: {kind}" for path, kind in CASES])
def test_a_file_that_would_run_code_is_refused_unrun_on_every_loading_path(path, kind, tmp_path):
    malicious = FILES[kind](tmp_path)
    load, key = PATHS[path]
    with pytest.raises(ConfigError) as refused:
        load(str(malicious), tmp_path)
    message = str(refused.value)
    assert "cannot run code" in message and "posix.system" in message and "\n" not in message, message
    assert refused.value.key == key
    assert not (tmp_path / MARKER).exists(), "the file ran its code"


def test_a_pytorch_model_bin_that_would_run_code_is_refused_unrun(tmp_path):
    hf = pytest.importorskip("tests.support.hf")  # the reference folder needs transformers
    folder = hf.as_pytorch_bin(hf.reference_bert(tmp_path / "hf"))
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "payload": RunsCode(tmp_path / MARKER)}, folder / "pytorch_model.bin")
    for read in (check_folder, load_backbone):
        with pytest.raises(ConfigError, match=r"pytorch_model\.bin: .*GLOBAL posix\.system.*cannot run code"):
            read(f"hf:{folder}")
    assert not (tmp_path / MARKER).exists()


def test_a_distributed_checkpoint_of_data_only_is_read(tmp_path):
    """The check lets through what strategy=fsdp writes: tensors, and items of plain data."""
    folder = distributed(tmp_path / "fine", {}, {"loops": {"epoch": 2, "lr": 0.1, "betas": (0.9, 0.99)}})
    checkpoint = read_checkpoint(folder)
    assert checkpoint["global_step"] == 3 and torch.equal(
        checkpoint["state_dict"]["backbone.w"], torch.zeros(4, 2)
    )
