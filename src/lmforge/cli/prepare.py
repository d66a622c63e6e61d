"""Tokenise a corpus into shards ahead of training: ``lmforge prepare data=... [model=...]``.

The DataModule runs the same step on demand; running it alone lets a cluster job start from ready
shards, or several runs share them. A second call with the same settings only reports what is cached.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lmforge.cli.errors import exit_on_config_error
from lmforge.errors import ConfigError
from lmforge.run.build import prepare_data
from lmforge.run.config import CONFIG_DIR, register_resolvers
from lmforge.run.registry import CORPUS
from lmforge.run.spec import resolve

register_resolvers()


def prepare(cfg: DictConfig) -> Path:
    """Check the composed config as ``train`` would, then make (or find) the tokenizer and the token
    shards of its corpus; returns their folder."""
    spec = resolve(cfg)
    if spec.objective.reads != CORPUS:
        raise ConfigError(
            "data",
            "lmforge prepare tokenises a pretraining corpus (data=stdlib, text_files, debian_docs); a "
            "labeled set is split and tokenised by its first run",
        )
    datamodule = prepare_data(spec)
    meta = json.loads((datamodule.tokens_dir / "meta.json").read_text())
    print(
        f"{datamodule.corpus.name}: {meta['documents']:,} documents, {meta['sentences']:,} sentences, "
        f"{meta['tokens']:,} tokens ({meta['dtype']}) in {len(meta['shards'])} shard(s); "
        f"{datamodule.tokenizer_settings.kind} vocabulary of {datamodule.vocab_size:,}\n"
        f"shards: {datamodule.tokens_dir}"
    )
    return datamodule.tokens_dir


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    exit_on_config_error(lambda: prepare(cfg))


if __name__ == "__main__":
    main()
