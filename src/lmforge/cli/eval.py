"""``python eval.py ckpt_path=...``: score a checkpoint on the test split of the data it was trained on.

The checkpoint carries the run's settings and tokenizer (and label map), so the same split is rebuilt
and read the same way; ``data.*`` overrides replace single settings (a bigger batch, another test
file). The metrics are printed and written to ``metrics.json`` in the report's folder; an
instruction-tuned checkpoint's generated responses go to ``generations.jsonl`` beside it.

Zero-shot (``lmforge.run.zero_shot``): given a ``template`` (and a labeled set, ``data=...``), a
pretraining checkpoint's own LM head rates the set through it; given an objective other than the
checkpoint's (``objective=...``, or chosen by a data preset: ``data=gcide_definitions`` chooses
``objective=sft``), the checkpoint is scored as a fine-tuning run from it would start, before any step.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf

from lmforge.cli.errors import exit_on_config_error
from lmforge.errors import ConfigError
from lmforge.run.checks import build
from lmforge.run.config import CONFIG_DIR, register_resolvers
from lmforge.run.load import load_task
from lmforge.run.registry import objective
from lmforge.run.spec import data_spec
from lmforge.run.zero_shot import zero_shot
from lmforge.tasks import LanguageTask

log = logging.getLogger("lmforge.cli.eval")
register_resolvers()
SPLITS = ("test", "val")


def checkpoint_data(
    cfg: DictConfig, task: LanguageTask, checkpoint: dict[str, Any]
) -> pl.LightningDataModule:
    """The data the checkpoint was trained on (``data.*`` replacing single settings), prepared."""
    saved = checkpoint.get("config")
    if not saved or "data" not in saved:
        raise ConfigError(
            "ckpt_path",
            f"{cfg.ckpt_path} does not hold its run's settings: it was written by an older train.py",
        )
    requested = cfg.get("objective")
    if requested:  # the same objective: evaluation settings may change, what the model trained with not
        settings = task.objective.to_dict()
        for key, value in OmegaConf.to_container(requested, resolve=True).items():
            if key in task.objective.EVALUATION_KEYS:
                settings[key] = value
            elif value != settings.get(key):
                log.warning(
                    "objective.%s=%r: the checkpoint's %r is kept (the model trained with it)",
                    key,
                    value,
                    settings.get(key),
                )
        task.objective = type(task.objective).from_dict(settings)
    data_cfg = OmegaConf.merge(OmegaConf.create(saved["data"]), cfg.get("data") or {})
    entry = objective(task.objective.kind, key="ckpt_path")
    datamodule = data_spec(data_cfg, task.config, entry, task.objective).build()
    datamodule.restore(checkpoint, cfg.ckpt_path)
    datamodule.prepare_data()
    return datamodule


def evaluate(cfg: DictConfig) -> dict[str, float]:
    if cfg.split not in SPLITS:
        raise ConfigError("split", f"split={cfg.split} is not one of {', '.join(SPLITS)}")
    task, _, checkpoint = load_task(cfg.ckpt_path)
    requested = cfg.get("objective")
    if cfg.get("template") is not None or (requested and requested.get("kind") != task.objective.kind):
        task, datamodule = zero_shot(cfg, checkpoint)
    else:
        datamodule = None
    if cfg.split == "test" and type(task).test_step is pl.LightningModule.test_step:
        raise ConfigError("split", f"{cfg.ckpt_path} has no test split (pretraining data): use split=val")
    if datamodule is None:
        datamodule = checkpoint_data(cfg, task, checkpoint)
    trainer = build(cfg.trainer)
    if cfg.split == "test":
        results = trainer.test(task, datamodule=datamodule, verbose=False)
    else:
        results = trainer.validate(task, datamodule=datamodule, verbose=False)
    metrics: dict[str, Any] = {k: float(v) for k, v in results[0].items()}
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = {"ckpt_path": str(cfg.ckpt_path), "split": cfg.split, "metrics": metrics}
    if cfg.get("template") is not None:
        report["zero_shot_template"] = OmegaConf.to_container(cfg.template, resolve=True)
    (output_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    generations = getattr(task, "generations", None) if cfg.split == "test" else None
    if generations:
        with (output_dir / "generations.jsonl").open("w", encoding="utf-8") as file:
            file.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in generations)
        log.info("wrote %d generated responses to %s", len(generations), output_dir / "generations.jsonl")
    width = max(len(name) for name in metrics)
    print(f"{cfg.split} metrics of {cfg.ckpt_path}:")
    for name, value in sorted(metrics.items()):
        print(f"  {name:<{width}}  {value:.4f}")
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    exit_on_config_error(lambda: evaluate(cfg))


if __name__ == "__main__":
    main()
