"""Every refusal, in one line and before any work: a ``ConfigError`` naming the key at fault, its message
on one line, and nothing written (no cache entry, no tokenizer, no checkpoint).

One table (``REFUSALS``) holds a case for each row of the README's "Errors you may see" and for each
refusal of the run spec and the settings it checks (``lmforge/run/spec.py``, ``run/checks.py``, the
model, objective, tuning-method, optimiser and data settings). Each case runs through ``train(cfg)``;
a few also run the real command line (exit status 2, one ``error:`` line, nothing written). Fixture
files (a non-UTF-8 corpus, a label file, checkpoints) are written into ``tmp_path``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from lmforge.cli.train import train
from lmforge.errors import ConfigError
from tests.conftest import TINY, TOPICS, compose_config, run_cli
from tests.support.unsafe import unsafe_checkpoint

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="refused only on a machine without a GPU")
LATIN1 = "Une phrase en fran\xe7ais.\nEt une autre, tr\xe8s courte.\n".encode("latin-1")
# The tiny BERT of conftest.TINY classifying a labeled CSV file (in place of TINY's corpus)
LABELED = (
    *(setting for setting in TINY if setting.startswith(("model.", "trainer.", "callbacks."))),
    "data=csv",
    "data.source.text_column=sentence",
    "data.source.label_column=topic",
    "data.tokenizer.vocab_size=300",
    "data.max_seq_len=32",
)
GPT = ("model=gpt_tiny", "model.d_model=32", "model.n_heads=2")
LLAMA = ("model=llama_tiny", "model.d_model=32", "model.n_heads=2", "model.n_kv_heads=1")


def write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def another_shape(tmp: Path) -> str:
    """What resuming or starting from a checkpoint reads first: the model settings it recorded."""
    model = {"_target_": "lmforge.models.BertConfig", "d_model": 64, "n_heads": 2, "n_layers": 1}
    torch.save({"hyper_parameters": {"model": model}, "state_dict": {}}, tmp / "wide.ckpt")
    return str(tmp / "wide.ckpt")


def one_sentence_documents(tmp: Path) -> list[str]:
    return [write(tmp / "short.txt", "\n\n".join(f"Document {i} has one sentence only" for i in range(40)))]


@dataclass(frozen=True)
class Refusal:
    key: str  # the key the error names
    words: str  # words of its message
    composed: tuple[str, ...] = ()  # overrides composed with Hydra (presets), after conftest.TINY
    settings: dict[str, Any] = field(default_factory=dict)  # then set; a callable value gets tmp_path
    tiny: bool = True  # start from conftest.TINY
    marks: tuple = ()
    # refused once the text is tokenised (its sentences, its size): the tokenizer and token shards stay
    # cached (right for the corrected run, which reuses them) and the run folder has its tokenizer.json
    tokenised: bool = False


REFUSALS: dict[str, Refusal] = {
    # the README's "Errors you may see", row by row (an unknown preset: the command line, below)
    "heads": Refusal(
        "model.n_heads", "model.n_heads=5 does not divide model.d_model=32", (), {"model.n_heads": 5}
    ),
    "seq_len": Refusal("data.max_seq_len", "exceeds the position table", (), {"data.max_seq_len": 100}),
    "prompt_positions": Refusal(
        "peft.n_virtual_tokens",
        "data.max_seq_len=48 plus peft.n_virtual_tokens=60 exceeds the position table",
        ("peft=prompt",),
        {"peft.n_virtual_tokens": 60},
    ),
    "ptuning_positions": Refusal(
        "peft.n_virtual_tokens",
        "plus peft.n_virtual_tokens=17",
        ("model=gpt_tiny", "peft=ptuning"),
        {"peft.n_virtual_tokens": 17},
    ),
    "frozen_tied_decoder": Refusal("peft.method", "leaves nothing to train", (*GPT, "peft=frozen")),
    "gpu_trainer_on_cpu": Refusal(
        "trainer.accelerator",
        "has no CUDA GPU: use trainer=cpu",
        ("trainer=gpu",),
        {"trainer.accelerator": "gpu"},
        marks=(NO_GPU,),
    ),
    "gpu_strategy_on_cpu": Refusal(
        "trainer.strategy", "CUDA GPUs only", ("strategy=deepspeed_zero2",), marks=(NO_GPU,)
    ),
    "fsdp1_on_cpu": Refusal(
        "trainer.strategy", "CUDA GPUs only", (), {"trainer.strategy": "fsdp"}, marks=(NO_GPU,)
    ),
    "fp16_mixed_on_cpu": Refusal(
        "trainer.precision",
        "use trainer.precision=bf16-mixed",
        (),
        {"trainer.precision": "16-mixed"},
        marks=(NO_GPU,),
    ),
    "fp16_true_on_cpu": Refusal(
        "trainer.precision",
        "use trainer.precision=bf16-mixed",
        (),
        {"trainer.precision": "16-true"},
        marks=(NO_GPU,),
    ),
    "required_setting": Refusal("data.source.path", "data.source.path has no value", LABELED, tiny=False),
    "no_corpus_paths": Refusal(
        "data.corpus.paths", "data.corpus.paths has no value", ("data=text_files",), tiny=False
    ),
    "no_corpus_file": Refusal(
        "data.corpus.paths",
        "matches no file",
        (),
        {"data.corpus.paths": lambda tmp: [f"{tmp}/nowhere/*.txt"]},
    ),
    "empty_corpus_file": Refusal(
        "data.corpus.paths",
        "empty.txt is empty",
        (),
        {"data.corpus.paths": lambda tmp: [write(tmp / "empty.txt", "")]},
    ),
    "latin1_corpus_file": Refusal(
        "data.corpus.paths",
        "latin.txt is not UTF-8 (byte 18, line 1)",
        (),
        {"data.corpus.paths": lambda tmp: [write(tmp / "latin.txt", LATIN1)]},
    ),
    "latin1_label_file": Refusal(
        "data.source.path",
        "latin.csv is not UTF-8 (byte 33, line 2)",
        LABELED,
        {"data.source.path": lambda tmp: write(tmp / "latin.csv", b"sentence,topic\n" + LATIN1)},
        tiny=False,
    ),
    "nsp_on_one_sentence_documents": Refusal(
        "objective",
        "next-sentence prediction needs documents of two or more sentences",
        (),
        {"data.corpus.paths": one_sentence_documents},
        tokenised=True,
    ),
    "unseen_test_label": Refusal(
        "data.source.test_path",
        "has the label 'music', which the training split",
        LABELED,
        {
            "data.source.path": str(TOPICS),
            "data.source.test_path": lambda tmp: write(
                tmp / "test.csv", "sentence,topic\nThe orchestra tunes up.,music\n"
            ),
        },
        tiny=False,
    ),
    "init_from_another_shape": Refusal(
        "model.init_from",
        "holds another model: this run's model has d_model=32 (checkpoint: 64)",
        (),
        {"model.init_from": another_shape},
    ),
    "resume_another_shape": Refusal(
        "ckpt_path",
        "holds another model: this run's model has d_model=32 (checkpoint: 64)",
        (),
        {"ckpt_path": another_shape},
    ),
    "resume_a_missing_file": Refusal(
        "ckpt_path", "ckpt_path=missing.ckpt is not a file", (), {"ckpt_path": "missing.ckpt"}
    ),
    "resume_a_checkpoint_that_runs_code": Refusal(
        "ckpt_path",
        "holds more than tensors and plain data",
        (),
        {"ckpt_path": lambda tmp: str(unsafe_checkpoint(tmp / "evil.ckpt", tmp / "code-ran"))},
    ),
    # the run spec (run/spec.py)
    "decoder_with_mlm": Refusal(
        "objective",
        "is a causal decoder and cannot train a masked-LM objective",
        ("model=gpt_tiny", "objective=mlm"),
    ),
    "encoder_with_clm": Refusal(
        "objective", "is a bidirectional encoder and cannot train causal LM", ("objective=clm",)
    ),
    "classify_a_corpus": Refusal("data", "reads a labeled set", ("objective=classify",)),
    "pretrain_on_a_labeled_set": Refusal(
        "data",
        "reads a pretraining corpus",
        (*LABELED, "objective=mlm"),
        {"data.source.path": str(TOPICS)},
        tiny=False,
    ),
    "objective_tokenizer_of_another_family": Refusal(
        "objective.tokenizer",
        "objective.tokenizer=bpe does not fit BertConfig",
        (),
        {"objective.tokenizer": "bpe"},
    ),
    "unknown_resume": Refusal("resume", "resume=always is not one of false, auto", (), {"resume": "always"}),
    "unknown_optimized_mode": Refusal(
        "optimized_mode", "optimized_mode=up is not one of min, max", (), {"optimized_mode": "up"}
    ),
    "negative_plan_timed_steps": Refusal(
        "plan_timed_steps", "must be an integer >= 0", (), {"plan_timed_steps": -1}
    ),
    "init_from_a_missing_file": Refusal(
        "model.init_from",
        "model.init_from=nowhere.ckpt is not a file",
        (),
        {"model.init_from": "nowhere.ckpt"},
    ),
    "training_split_smaller_than_a_batch": Refusal(
        "data.batch_size",
        "fewer than data.batch_size=512: lower data.batch_size",
        (),
        {"data.batch_size": 512},
        tokenised=True,
    ),
    "decoder_split_smaller_than_a_batch": Refusal(
        "data.batch_size",
        "fewer than data.batch_size=512: lower data.batch_size",
        ("model=gpt_tiny",),
        {"data.max_seq_len": 32, "data.batch_size": 512},
        tokenised=True,
    ),
    "corpus_without_text": Refusal(
        "data.corpus",
        "holds no text",
        (),
        {"data.corpus.paths": lambda tmp: [write(tmp / "blank.jsonl", '{"text": ""}\n{"text": "   "}\n')]},
    ),
    # the trainer group (run/checks.py)
    "unknown_precision": Refusal(
        "trainer.precision",
        "trainer.precision=bf15-mixed is not one of",
        (),
        {"trainer.precision": "bf15-mixed"},
    ),
    "no_bound": Refusal(
        "trainer.max_steps",
        "none of trainer.max_steps, trainer.max_epochs, trainer.max_time is set",
        (),
        {"trainer.max_steps": -1},
    ),
    "max_steps_zero": Refusal(
        "trainer.max_steps", "trainer.max_steps=0 trains nothing", (), {"trainer.max_steps": 0}
    ),
    "max_epochs_zero": Refusal(
        "trainer.max_epochs",
        "trainer.max_epochs=0 trains nothing",
        (),
        {"trainer.max_steps": -1, "trainer.max_epochs": 0},
    ),
    "accumulate_zero": Refusal(
        "trainer.accumulate_grad_batches",
        "must be a whole number of batches, at least 1",
        (),
        {"trainer.accumulate_grad_batches": 0},
    ),
    "val_check_interval_zero": Refusal(
        "trainer.val_check_interval",
        "must be a positive number of batches",
        (),
        {"trainer.val_check_interval": 0},
    ),
    "log_every_n_steps_zero": Refusal(
        "trainer.log_every_n_steps", "must be a whole number >= 1", (), {"trainer.log_every_n_steps": 0}
    ),
    "negative_gradient_clip": Refusal(
        "trainer.gradient_clip_val", "must be >= 0", (), {"trainer.gradient_clip_val": -1.0}
    ),
    # the model (models/config.py, bert.py, decoder.py)
    "zero_layers": Refusal(
        "model.n_layers", "model.n_layers=0 must be a positive integer", (), {"model.n_layers": 0}
    ),
    "dropout_one": Refusal(
        "model.dropout", "model.dropout=1.0 must be in [0, 1)", (), {"model.dropout": 1.0}
    ),
    "zero_norm_eps": Refusal(
        "model.norm_eps", "model.norm_eps=0.0 must be positive", (), {"model.norm_eps": 0.0}
    ),
    "unknown_bert_position": Refusal(
        "model.position", "model.position='rope' is not one of", (), {"model.position": "rope"}
    ),
    "no_segments": Refusal("model.type_vocab_size", "must be at least 1", (), {"model.type_vocab_size": 0}),
    "pad_outside_the_vocabulary": Refusal(
        "model.pad_token_id", "is outside the vocabulary", (), {"model.pad_token_id": -1}
    ),
    "kv_heads_not_dividing": Refusal(
        "model.n_kv_heads", "model.n_kv_heads=3 must divide model.n_heads=2", LLAMA, {"model.n_kv_heads": 3}
    ),
    "odd_rotary_head": Refusal(
        "model.n_heads",
        "rotary positions need an even head size",
        LLAMA,
        {"model.d_model": 36, "model.n_heads": 4},
    ),
    "zero_rope_theta": Refusal(
        "model.rope_theta", "model.rope_theta=0.0 must be positive", LLAMA, {"model.rope_theta": 0.0}
    ),
    "unknown_decoder_norm": Refusal(
        "model.norm", "model.norm='batchnorm' is not one of", GPT, {"model.norm": "batchnorm"}
    ),
    # the objective (objectives/settings.py, run/registry.py)
    "unknown_objective_kind": Refusal(
        "objective.kind",
        "objective.kind='mlmm' is not one of mlm, clm, classify",
        (),
        {"objective.kind": "mlmm"},
    ),
    "unknown_objective_key": Refusal(
        "objective.nsp_weigth", "is not a setting of objective.kind=mlm", (), {"objective.nsp_weigth": 2}
    ),
    "unknown_tokenizer_kind": Refusal(
        "objective.tokenizer",
        "objective.tokenizer='sentencepiece' is not one of",
        (),
        {"objective.tokenizer": "sentencepiece"},
    ),
    "nsp_not_a_boolean": Refusal("objective.nsp", "must be true or false", (), {"objective.nsp": "yes"}),
    "negative_nsp_weight": Refusal(
        "objective.nsp_weight", "objective.nsp_weight=-1.0 must be >= 0", (), {"objective.nsp_weight": -1.0}
    ),
    "mlm_probability_zero": Refusal(
        "objective.mlm_probability", "must be in (0, 1]", (), {"objective.mlm_probability": 0}
    ),
    "mask_token_ratio_above_one": Refusal(
        "objective.mask_token_ratio", "must be in [0, 1]", (), {"objective.mask_token_ratio": 1.5}
    ),
    "negative_random_token_ratio": Refusal(
        "objective.random_token_ratio", "must be in [0, 1]", (), {"objective.random_token_ratio": -0.1}
    ),
    "masking_ratios_above_one": Refusal(
        "objective.random_token_ratio",
        "must not exceed 1",
        (),
        {"objective.mask_token_ratio": 0.8, "objective.random_token_ratio": 0.3},
    ),
    "classifier_dropout_one": Refusal(
        "objective.classifier_dropout",
        "must be in [0, 1)",
        LABELED,
        {"data.source.path": str(TOPICS), "objective.classifier_dropout": 1.0},
        tiny=False,
    ),
    # the tuning method (peft/): read with the rest, before the tokenizer and token arrays
    "unknown_peft_method": Refusal(
        "peft.method", "peft.method='lorra' is not one of none, frozen", (), {"peft.method": "lorra"}
    ),
    "unknown_peft_key": Refusal(
        "peft.ranks", "is not a setting of peft.method=lora", ("peft=lora",), {"peft.ranks": 4}
    ),
    "lora_rank_zero": Refusal(
        "peft.rank", "peft.rank=0 must be a positive integer", ("peft=lora",), {"peft.rank": 0}
    ),
    "lora_alpha_negative": Refusal(
        "peft.alpha", "peft.alpha=-1 must be positive", ("peft=lora",), {"peft.alpha": -1}
    ),
    "lora_dropout_one": Refusal("peft.dropout", "must be in [0, 1)", ("peft=lora",), {"peft.dropout": 1.0}),
    "lora_unknown_target": Refusal(
        "peft.targets", "peft.targets holds 'gate'", ("peft=lora",), {"peft.targets": ["q", "gate"]}
    ),
    "lora_target_twice": Refusal(
        "peft.targets", "names a target twice", ("peft=lora",), {"peft.targets": ["q", "q"]}
    ),
    "lora_targets_not_a_list": Refusal(
        "peft.targets", "must be a list drawn from", ("peft=lora",), {"peft.targets": "q"}
    ),
    "peft_lr_zero": Refusal("peft.lr", "peft.lr=0 must be positive", ("peft=lora",), {"peft.lr": 0}),
    "prompt_text_without_text": Refusal(
        "peft.init_text",
        "peft.init=text needs a text in peft.init_text",
        ("peft=prompt",),
        {"peft.init": "text"},
    ),
    "unknown_prompt_init": Refusal(
        "peft.init", "peft.init='words' is not one of", ("peft=prompt",), {"peft.init": "words"}
    ),
    "unknown_ptuning_encoder": Refusal(
        "peft.encoder", "peft.encoder='gru' is not one of", ("peft=ptuning",), {"peft.encoder": "gru"}
    ),
    "prefix_not_a_boolean": Refusal(
        "peft.reparameterize", "must be true or false", ("peft=prefix",), {"peft.reparameterize": "yes"}
    ),
    "unknown_adapter_variant": Refusal(
        "peft.variant",
        "peft.variant='parallel' is not one of",
        ("peft=adapter",),
        {"peft.variant": "parallel"},
    ),
    "ia3_unknown_target": Refusal(
        "peft.targets", "peft.targets holds 'q'", ("peft=ia3",), {"peft.targets": ["q"]}
    ),
    # the optimiser (optim.py)
    "negative_lr": Refusal("optim.lr", "optim.lr=-1 must be positive", (), {"optim.lr": -1}),
    "negative_weight_decay": Refusal("optim.weight_decay", "must be >= 0", (), {"optim.weight_decay": -0.1}),
    "one_beta": Refusal("optim.betas", "must be two numbers in [0, 1)", (), {"optim.betas": [0.9]}),
    "unknown_schedule": Refusal(
        "optim.schedule", "optim.schedule='step' is not one of", (), {"optim.schedule": "step"}
    ),
    "warmup_ratio_one": Refusal("optim.warmup_ratio", "must be in [0, 1)", (), {"optim.warmup_ratio": 1.0}),
    "negative_warmup_steps": Refusal("optim.warmup_steps", "must be >= 0", (), {"optim.warmup_steps": -1}),
    "min_lr_ratio_above_one": Refusal(
        "optim.min_lr_ratio", "must be in [0, 1]", (), {"optim.min_lr_ratio": 2.0}
    ),
    # the data settings (data/)
    "missing_tokenizer_file": Refusal(
        "data.tokenizer.path",
        "data.tokenizer.path=missing.json does not exist",
        (),
        {"data.tokenizer.path": "missing.json"},
    ),
    "bpe_vocabulary_too_small": Refusal(
        "data.tokenizer.vocab_size", "is too small for bpe", GPT, {"data.tokenizer.vocab_size": 100}
    ),
    "val_fraction_one": Refusal("data.val_fraction", "must be in (0, 1)", (), {"data.val_fraction": 1.0}),
    "short_sequences": Refusal("data.max_seq_len", "must be at least 8", (), {"data.max_seq_len": 4}),
    "unknown_txt_unit": Refusal(
        "data.corpus.txt_documents", "is not one of", (), {"data.corpus.txt_documents": "chapter"}
    ),
    "missing_label_file": Refusal(
        "data.source.path", "does not exist", LABELED, {"data.source.path": "missing.csv"}, tiny=False
    ),
    # the callbacks (run/callbacks.py)
    "unknown_nan_policy": Refusal(
        "callbacks.nan_guard.policy",
        "callbacks.nan_guard.policy=ignore is not one of stop, skip",
        (),
        {"callbacks.nan_guard.policy": "ignore"},
    ),
}


@functools.cache
def composed(overrides: tuple[str, ...], tiny: bool) -> DictConfig:
    """The config of ``overrides``, composed once for every case that shares them."""
    return compose_config([*(TINY if tiny else ()), *overrides], Path("unused"))


def case_config(refusal: Refusal, tmp_path: Path) -> DictConfig:
    cfg = copy.deepcopy(composed(refusal.composed, refusal.tiny))
    cfg.paths.output_dir, cfg.paths.data_dir = str(tmp_path / "run"), str(tmp_path / "data")
    cfg.paths.log_dir = str(tmp_path / "logs")
    for key, value in refusal.settings.items():
        OmegaConf.update(cfg, key, value(tmp_path) if isinstance(value, Callable) else value, force_add=True)
    return cfg


def assert_nothing_written(tmp_path: Path, tokenised: bool = False) -> None:
    written = [path for path in (tmp_path / "data").rglob("*") if path.is_file()]
    cache = [path for path in written if path.parent.parent.parent.name == "cache"]
    assert not written or (tokenised and written == cache), f"a refused run left {written}"
    run = tmp_path / "run"
    assert not (run / "checkpoints").exists() and (tokenised or not (run / "tokenizer.json").exists())


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=refusal.marks) for name, refusal in REFUSALS.items()]
)
def test_a_bad_input_is_refused_in_one_line_before_any_work(name, tmp_path):
    refusal = REFUSALS[name]
    cfg = case_config(refusal, tmp_path)
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    error = caught.value
    assert (error.key, "\n" in str(error)) == (refusal.key, False), str(error)
    assert refusal.words in str(error)
    assert_nothing_written(tmp_path, refusal.tokenised)
    assert not (tmp_path / "code-ran").exists()


def test_one_sentence_documents_train_without_next_sentence_prediction(make_cfg, tmp_path):
    """What the refusal of ``nsp_on_one_sentence_documents`` proposes works."""
    cfg = make_cfg(f"data.corpus.paths={one_sentence_documents(tmp_path)}", "objective=mlm", "debug=fdr")
    assert train(cfg) is not None


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(
            ["model=bert_huge"], "error: model=bert_huge is not a preset; choose one of", id="unknown_preset"
        ),
        pytest.param(
            ["model.n_heads=5"],
            "error: model.n_heads=5 does not divide model.d_model=128: set model.n_heads to one of "
            "1, 2, 4, 8, 16, 32, 64 (or change model.d_model)",
            id="heads",
        ),
        pytest.param(
            ["peft=lora", "peft.rank=0"], "error: peft.rank=0 must be a positive integer", id="lora_rank"
        ),
        pytest.param(
            ["data=text_files", "data.corpus.paths=[{tmp}/latin.txt]"],
            "error: {tmp}/latin.txt is not UTF-8",
            id="latin1",
        ),
    ],
)
def test_on_the_command_line_a_bad_input_is_one_error_line_and_exit_2(tmp_path, args, line):
    write(tmp_path / "latin.txt", LATIN1)
    result = run_cli(
        "train.py",
        *(arg.format(tmp=tmp_path) for arg in args),
        f"hydra.run.dir={tmp_path}/run",
        f"paths.data_dir={tmp_path}/data",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(line.format(tmp=tmp_path)), result.stderr[-2000:]
    assert result.stderr.rstrip().endswith(errors[0])  # the last line: no traceback follows
    assert_nothing_written(tmp_path)
