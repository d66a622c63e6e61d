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
from lmforge.run.checks import build
from lmforge.run.config import CONFIG_DIR, register_resolvers

register_resolvers()


def prepare(cfg: DictConfig) -> Path:
    """Build ``cfg.data`` and prepare it; returns the folder of the token shards."""
    datamodule = build(cfg.data)
    datamodule.prepare_data()
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
