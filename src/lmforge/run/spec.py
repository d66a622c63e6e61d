"""One validated description of a run, made from the composed config before any work: ``resolve``.

``resolve(cfg)`` checks every group and every rule across groups and returns a frozen ``RunSpec`` of
typed settings: the model config (its shape read from a Hugging Face ``config.json`` when
``model.init_from=hf:``), the objective's settings and registry entry, the optimiser's, the tuning
method's, the data settings, the trainer's, and where the run starts from. It reads no data and writes
nothing: a mistake is one ``ConfigError`` naming the key and the fix, and the builders
(``lmforge.run.build``), ``train()`` and ``plan`` then work from the spec alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from lmforge.data.moved import upgrade
from lmforge.errors import ConfigError
from lmforge.io.checkpoints import is_distributed_checkpoint, read_checkpoint
from lmforge.io.hf import check_folder, derive_model_config, is_hf
from lmforge.io.init_from import check_init_from, check_shapes, checkpoint_model, pretrained_names
from lmforge.models import TransformerConfig, is_decoder, tokenizer_kind
from lmforge.objectives.settings import ObjectiveSettings
from lmforge.optim import OptimizerSettings
from lmforge.peft import PeftSettings, peft_settings
from lmforge.run.checks import build, check_trainer
from lmforge.run.registry import DATA_KINDS, OBJECTIVES, Objective, objective

log = logging.getLogger("lmforge.run")

RESUME = (False, "auto")
MODES = ("min", "max")


@dataclass(frozen=True)
class DataSpec:
    """The ``data`` group for the objective's DataModule: plain settings, the corpus or labeled set
    built from its node (a settings object that has read nothing), the tokenizer kind set by the model."""

    objective: Objective
    objective_settings: ObjectiveSettings
    settings: Mapping[str, Any]

    def build(self) -> pl.LightningDataModule:
        """A new DataModule; it checks its settings when built and reads nothing until prepared."""
        return self.objective.datamodule(dict(self.settings), self.objective_settings)

    @property
    def max_seq_len(self) -> int:
        return int(self.settings["max_seq_len"])

    @property
    def batch_size(self) -> int:
        return int(self.settings["batch_size"])


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs, checked. ``config`` is the resolved composed config, kept for records
    (checkpoints, result.json, W&B); the typed fields are what the builders read."""

    config: DictConfig
    model: TransformerConfig
    objective: Objective
    objective_settings: ObjectiveSettings
    optim: OptimizerSettings
    peft: PeftSettings
    data: DataSpec
    trainer: DictConfig
    ckpt_path: str | None
    resumes_last: bool  # resume=auto found the run folder's last.ckpt
    output_dir: Path
    seed: int
    compile: bool
    plan: bool
    plan_timed_steps: int
    optimized_metric: str
    optimized_mode: str

    @property
    def init_from(self) -> str | None:
        return self.model.init_from

    @property
    def kind(self) -> str:
        return self.objective.kind


def resolve(cfg: DictConfig) -> RunSpec:
    """Check the composed config ``cfg`` and return its ``RunSpec``; reads no data, writes nothing."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], f"{missing[0]} has no value: give one, e.g. `{missing[0]}=...`")
    node = OmegaConf.to_container(cfg.model, resolve=True)
    if is_hf(node.get("init_from")):  # a Hugging Face folder: the shape comes from its config.json
        node = derive_model_config(node)
        check_folder(node["init_from"])  # weights whole and of its shapes, a tokenizer: before any data
    model = build(OmegaConf.create(node))
    check_init_from(model.init_from)
    if model.init_from and not is_hf(model.init_from) and model.init_strict:
        check_start(model)
    entry = objective(cfg.objective.get("kind"))
    objective_settings = entry.settings(objective_values(cfg, entry))
    check_model_family(model, entry)
    objective_settings.check_model(model)
    check_lm_head(model, entry)
    peft = peft_settings(OmegaConf.to_container(cfg.peft, resolve=True) if cfg.get("peft") else None)
    check_tuning(model, entry, peft)
    data = data_spec(cfg.data, model, entry, objective_settings)
    check_positions(model, data, peft)
    check_trainer(cfg.trainer)
    ckpt_path, resumes_last = resume_from(cfg)
    if ckpt_path is not None:
        check_resume(model, ckpt_path)
    mode = cfg.get("optimized_mode", "min")
    if mode not in MODES:
        raise ConfigError("optimized_mode", f"optimized_mode={mode} is not one of {', '.join(MODES)}")
    timed = cfg.get("plan_timed_steps", 5)
    if not isinstance(timed, int) or timed < 0:
        raise ConfigError("plan_timed_steps", f"plan_timed_steps={timed!r} must be an integer >= 0")
    return RunSpec(
        config=record_of(cfg, node, ckpt_path),
        model=model,
        objective=entry,
        objective_settings=objective_settings,
        optim=OptimizerSettings(**OmegaConf.to_container(cfg.optim, resolve=True)),
        peft=peft,
        data=data,
        trainer=cfg.trainer,
        ckpt_path=ckpt_path,
        resumes_last=resumes_last,
        output_dir=Path(cfg.paths.output_dir),
        seed=int(cfg.seed),
        compile=bool(cfg.get("compile", False)),
        plan=bool(cfg.get("plan", False)),
        plan_timed_steps=timed,
        optimized_metric=str(cfg.get("optimized_metric") or ""),
        optimized_mode=mode,
    )


def record_of(cfg: DictConfig, model: dict[str, Any], ckpt_path: str | None) -> DictConfig:
    """The config the run records (checkpoints, result.json, W&B): ``cfg`` with the model it builds
    (its shape from a Hugging Face folder) and the checkpoint it resumes (``resume=auto``'s too)."""
    record = cfg.copy()
    with open_dict(record):
        record.model = model
        record.ckpt_path = ckpt_path
    return record


def objective_values(cfg: DictConfig, entry: Objective) -> dict[str, Any]:
    """The ``objective`` group plus the top-level groups its settings take in (``template`` for
    ``prompt_lm``); such a group chosen for an objective that does not read it is an error."""
    values = OmegaConf.to_container(cfg.objective, resolve=True)
    taken = entry.settings_type.GROUPS
    for group in sorted({group for e in OBJECTIVES.values() for group in e.settings_type.GROUPS}):
        node = cfg.get(group)
        if group in taken:
            values[group] = None if node is None else OmegaConf.to_container(node, resolve=True)
        elif node is not None:
            readers = [e.kind for e in OBJECTIVES.values() if group in e.settings_type.GROUPS]
            raise ConfigError(
                group,
                f"a {group} is read by objective={' / '.join(readers)}, and this run trains objective.kind="
                f"{entry.kind}: add objective={readers[0]}, or drop {group}=",
            )
    return values


def check_model_family(model: TransformerConfig, entry: Objective) -> None:
    """An encoder trains masked LM, a decoder causal LM; either classifies (the registry says which)."""
    decoder = is_decoder(model)
    if entry.models == "encoder" and decoder:
        raise ConfigError(
            "objective",
            f"{type(model).__name__} is a causal decoder and cannot train {entry.about} (objective.kind="
            f"{entry.kind}): use objective=clm (the default of decoder presets), or an encoder such as "
            "model=bert_tiny",
        )
    if entry.models == "decoder" and not decoder:
        raise ConfigError(
            "objective",
            f"{type(model).__name__} is a bidirectional encoder and cannot train {entry.about} "
            f"(objective.kind={entry.kind}): use objective=mlm_nsp or objective=mlm, or a decoder such as "
            "model=gpt_tiny or model=llama_tiny",
        )


def check_tuning(model: TransformerConfig, entry: Objective, peft: PeftSettings) -> None:
    """``peft=frozen`` trains the heads alone, and a decoder whose head is its LM head (causal LM,
    prompt_lm, instruction tuning) with tied embeddings has none of its own (the head is the token
    embedding): nothing would train. The task checks once more what trains when it is built (bitfit
    on a backbone without biases, say)."""
    tied_lm_head = is_decoder(model) and getattr(model, "tie_embeddings", False)
    if peft.method == "frozen" and entry.lm_head and tied_lm_head:
        raise ConfigError(
            "peft.method",
            "peft.method=frozen leaves nothing to train in a causal LM with tied embeddings (its "
            "head is the frozen token embedding): choose another method, e.g. peft=lora, or set "
            "model.tie_embeddings=false",
        )


def check_lm_head(model: TransformerConfig, entry: Objective) -> None:
    """``prompt_lm`` on BERT scores the slot with the masked-LM head, which must come pretrained with
    ``model.init_from`` (a decoder's LM head is part of its backbone)."""
    init_from = model.init_from
    if entry.kind != "prompt_lm" or is_decoder(model) or not init_from or not model.init_strict:
        return
    if not any(name.startswith("mlm_head.") for name in pretrained_names(init_from, model)):
        raise ConfigError(
            "model.init_from",
            f"model.init_from={init_from} holds no masked-LM head, and objective=prompt_lm scores the "
            "[MASK] slot with it (a sentence encoder such as all-MiniLM-L6-v2 has none): use "
            "objective=classify, start from a masked-LM pretraining run, or set model.init_strict=false "
            "to train a new head",
        )


def data_spec(
    node: DictConfig, model: TransformerConfig, entry: Objective, objective_settings: ObjectiveSettings
) -> DataSpec:
    """The ``data`` group for ``entry``'s DataModule, checked by building one (which reads nothing)."""
    reads = next((key for key in DATA_KINDS if key in node), None)
    if reads != entry.reads:
        given = DATA_KINDS[reads].split(" (")[0] if reads else "none of them"
        raise ConfigError(
            "data",
            f"objective.kind={entry.kind} ({entry.about}) reads {DATA_KINDS[entry.reads]}, and the data "
            f"preset gives {given}",
        )
    # _target_ and objective: keys of data presets written before the objective registry chose the
    # DataModule; the registry decides now, from objective.kind
    settings = {
        key: value
        for key, value in OmegaConf.to_container(node, resolve=True).items()
        if key not in ("_target_", "objective", reads)
    }
    settings[reads] = build(upgrade(OmegaConf.to_container(node[reads], resolve=True)))
    kind = tokenizer_kind(model)
    if objective_settings.tokenizer not in (None, kind):
        raise ConfigError(
            "objective.tokenizer",
            f"objective.tokenizer={objective_settings.tokenizer} does not fit {type(model).__name__}, "
            f"which reads {kind}: drop the key (the tokenizer follows the model family)",
        )
    settings["tokenizer"] = {**settings.get("tokenizer", {}), "kind": kind}
    spec = DataSpec(entry, objective_settings, settings)
    spec.build()  # the DataModule's own checks: sizes, fractions, files that exist and are not empty
    return spec


def check_positions(model: TransformerConfig, data: DataSpec, peft: PeftSettings) -> None:
    seq_len, table = data.max_seq_len, model.max_seq_len
    if seq_len > table:
        raise ConfigError(
            "data.max_seq_len",
            f"data.max_seq_len={seq_len} exceeds the position table of the model "
            f"(model.max_seq_len={table}): lower data.max_seq_len or raise model.max_seq_len",
        )
    # prompt and p-tuning put their virtual tokens in front of the input: they take positions too
    n_virtual = getattr(peft.settings, "n_virtual_tokens", 0) or 0
    if seq_len + n_virtual > table:
        raise ConfigError(
            "peft.n_virtual_tokens",
            f"data.max_seq_len={seq_len} plus peft.n_virtual_tokens={n_virtual} exceeds the position "
            f"table of the model (model.max_seq_len={table}): lower one of them to fit",
        )


def resume_from(cfg: DictConfig) -> tuple[str | None, bool]:
    """The checkpoint the run resumes from, and whether ``resume=auto`` found it.

    ``resume=auto`` resumes from the run folder's ``checkpoints/last.ckpt`` when there is one: the
    run folder is ``paths.output_dir``, so a rerun finds it only with a fixed ``hydra.run.dir=...``
    (the default one is named by the start time). An explicit ``ckpt_path`` wins.
    """
    resume, ckpt_path = cfg.get("resume", False), cfg.get("ckpt_path")
    if resume not in RESUME and resume is not None:
        raise ConfigError("resume", f"resume={resume} is not one of false, auto")
    if ckpt_path is not None:
        if not (Path(ckpt_path).is_file() or is_distributed_checkpoint(ckpt_path)):
            raise ConfigError(
                "ckpt_path",
                f"ckpt_path={ckpt_path} is not a file: give a checkpoint (.ckpt) or a distributed "
                "one's folder",
            )
        if resume == "auto":
            log.info("resume=auto: ckpt_path=%s is given and wins", ckpt_path)
        return str(ckpt_path), False
    if resume != "auto":
        return None, False
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if last.is_file() or is_distributed_checkpoint(last):
        log.info("resume=auto: resuming from %s", last)
        return str(last), True
    log.info("resume=auto: no %s yet, starting fresh (a rerun finds it with the same hydra.run.dir)", last)
    return None, False


def check_start(model: TransformerConfig) -> None:
    """``model.init_from`` of another shape would be refused only when the task loads it, after the data
    was read: compare its recorded shape first, as ``check_resume`` does."""
    saved = checkpoint_model(read_checkpoint(model.init_from, "model.init_from", weights=False))
    check_shapes(model, saved, model.init_from)


def check_resume(model: TransformerConfig, ckpt_path: str) -> None:
    """A checkpoint of another shape would fail deep in Lightning's restore with a multi-line
    ``state_dict`` error, after the data was read: compare its recorded shape first."""
    saved = checkpoint_model(read_checkpoint(ckpt_path, weights=False))
    check_shapes(model, saved, ckpt_path, setting="ckpt_path")


def with_vocab_size(model: TransformerConfig, vocab_size: int) -> TransformerConfig:
    return dataclasses.replace(model, vocab_size=vocab_size)
