"""Shared fixtures and helpers of both layers (tests/unit, tests/integration): composed configs with a tiny
model on the fixture corpus, run in temporary folders."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.distributed as dist
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from lmforge.cli.train import train
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.run.config import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = FIXTURES / "corpus"

# Small enough to train in seconds on one CPU thread.
TINY = [
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.n_layers=1",
    "model.max_seq_len=64",
    "data=text_files",
    f"data.corpus.paths=[{CORPUS}/workshop.txt,{CORPUS}/notes.jsonl]",
    "data.tokenizer.vocab_size=400",
    "data.max_seq_len=48",
    "data.batch_size=8",
    "data.val_fraction=0.2",
    "data.val_draws=1",
    "callbacks.rich_progress_bar=null",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]

# A classifier on 48 sentences of two topics (tests/fixtures/labeled/files/topics.csv), CPU, quiet.
TOPICS = FIXTURES / "labeled" / "files" / "topics.csv"
TOPICS_RUN = [
    "data=csv",
    f"data.source.path={TOPICS}",
    "data.source.text_column=sentence",
    "data.source.label_column=topic",
    "data.max_seq_len=32",
    "data.batch_size=8",
    "data.val_fraction=0.25",
    "data.test_fraction=0.25",
    "callbacks.rich_progress_bar=null",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "optimized_metric=val/acc",
    "optimized_mode=max",
]

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
os.environ["WANDB_MODE"] = "disabled"  # tests never reach W&B; the tracking test turns offline mode on
register_resolvers()


def prepare_script(name: str) -> ModuleType:
    """``datasets/<name>/prepare.py``, imported by its path (the scripts are no package)."""
    spec = importlib.util.spec_from_file_location(f"prepare_{name}", ROOT / "datasets" / name / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def compose_config(overrides: list[str], run_dir: Path) -> DictConfig:
    """Compose ``conf/train.yaml`` as ``python train.py`` would, writing under ``run_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                f"paths.output_dir={run_dir / 'run'}",
                f"paths.data_dir={run_dir / 'data'}",
                f"paths.log_dir={run_dir / 'logs'}",
                f"hydra.run.dir={run_dir / 'run'}",
            ],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):  # the task function never sees the hydra node
        del cfg["hydra"]
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides, tiny=True)``: a config ready for ``lmforge.cli.train.train``."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_config([*(TINY if tiny else []), *overrides], tmp_path)

    return make


def run_if(
    min_gpus: int = 0, deepspeed: bool = False, linux: bool = False, multiprocess: bool = False
) -> pytest.MarkDecorator:
    """One ``skipif`` for what a test needs: CUDA GPUs, the deepspeed package, Linux, or 2 processes
    (``torch.distributed`` with gloo); the reason names everything that is missing."""
    missing = []
    if min_gpus and torch.cuda.device_count() < min_gpus:
        missing.append(f"{min_gpus} CUDA GPU(s) (found {torch.cuda.device_count()})")
    if deepspeed and importlib.util.find_spec("deepspeed") is None:
        missing.append('the deepspeed package (pip install -c constraints.txt -e ".[strategies]")')
    if linux and not sys.platform.startswith("linux"):
        missing.append(f"Linux (this is {sys.platform})")
    if multiprocess and not (dist.is_available() and dist.is_gloo_available()):
        missing.append("torch.distributed with gloo")
    return pytest.mark.skipif(bool(missing), reason="needs " + ", ".join(missing))


def metrics(run_dir: Path) -> list[dict[str, float]]:
    """The rows of a run's ``csv/metrics.csv``, each with the values it holds."""
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(handle)]


def step_of(path: Path) -> int:
    """The training step a checkpoint file was written at."""
    return torch.load(path, weights_only=False, map_location="cpu")["global_step"]


def assert_non_degenerate(tokens: list[int], distinct: int = 4) -> None:
    """A continuation worth comparing: not one or two tokens repeated (what tiny models at std 0.02 give)."""
    assert len(set(tokens)) >= distinct, f"a degenerate continuation: {tokens}"


SHORT = ["trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="session")
def pretrained_bert(tmp_path_factory) -> Path:
    """The last checkpoint of the tiny BERT of ``TINY`` pretrained for a few steps (MLM + NSP)."""
    tmp = tmp_path_factory.mktemp("pretrained_bert")
    cfg = compose_config([*TINY, *SHORT], tmp)
    train(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def sentences() -> list[str]:
    """The 48 sentences of the topics fixture."""
    return [line.split(",", 1)[0] for line in TOPICS.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def wordpiece_folder(tmp_path_factory) -> Path:
    """A folder with a BERT vocab.txt (trained on the topics fixture) and nothing else yet."""
    folder = tmp_path_factory.mktemp("wordpiece")
    tokenizer = TokenizerSettings(kind="wordpiece", vocab_size=200, min_frequency=1).train(sentences())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab))
    return folder


@pytest.fixture(scope="module")
def study_data_dir(tmp_path_factory) -> Path:
    """One data cache for the module: the tokenizer is trained once, every later trial reuses it."""
    return tmp_path_factory.mktemp("sweep-data")


@pytest.fixture
def study_folders(tmp_path, study_data_dir) -> list[str]:
    """A study's folders: its own logs, the module's data cache."""
    return [f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={study_data_dir}"]
