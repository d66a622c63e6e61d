"""Every bad input is refused in one line before any work: a ConfigError naming the key, nothing written.

In-process cases go through ``train(cfg)``; a few run the real command line for the exit status 2 and
the single ``error:`` line on stderr. Fixture files (a non-UTF-8 corpus, a label file) are written
into ``tmp_path``, never into the repository.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lmforge.cli.train import CONFIG_DIR, train, unknown_preset
from lmforge.errors import ConfigError

from .conftest import FIXTURES, TINY, run_cli

TOPICS = FIXTURES / "labeled" / "files" / "topics.csv"
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
LATIN1 = "Une phrase en fran\xe7ais.\nEt une autre, tr\xe8s courte.\n".encode("latin-1")
LATIN1_CSV = b"sentence,topic\n" + LATIN1
# The tiny BERT of conftest.TINY classifying a labeled CSV file (in place of TINY's corpus)
LABELED = [
    *(setting for setting in TINY if setting.startswith(("model.", "trainer.", "callbacks."))),
    "data=csv",
    "data.source.text_column=sentence",
    "data.source.label_column=topic",
    "data.tokenizer.vocab_size=300",
    "data.max_seq_len=32",
]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def topics_with_an_unseen_test_label(tmp: Path) -> list[str]:
    test = write(tmp / "test.csv", "sentence,topic\nThe orchestra tunes up.,music\n")
    return [*LABELED, f"data.source.path={TOPICS}", f"data.source.test_path={test}"]


def checkpoint_of_another_shape(tmp: Path) -> list[str]:
    """What resuming reads first: the model settings Lightning saves as ``hyper_parameters``."""
    path = tmp / "wide.ckpt"
    model = {"_target_": "lmforge.models.BertConfig", "d_model": 64, "n_heads": 2, "n_layers": 1}
    torch.save({"hyper_parameters": {"model": model}, "state_dict": {}}, path)
    return [f"ckpt_path={path}"]


CASES: dict[str, tuple[Callable[[Path], list[str]], str, str]] = {
    # name: (overrides written for tmp_path, the key at fault, words of the message)
    "heads": (lambda tmp: ["model.n_heads=5"], "model.n_heads", "does not divide model.d_model=32"),
    "seq_len": (lambda tmp: ["data.max_seq_len=100"], "data.max_seq_len", "exceeds the position table"),
    "prompt_positions": (
        lambda tmp: ["peft=prompt", "peft.n_virtual_tokens=60"],
        "peft.n_virtual_tokens",
        "data.max_seq_len=48 plus peft.n_virtual_tokens=60 exceeds the position table",
    ),
    "ptuning_positions": (
        lambda tmp: ["model=gpt_tiny", "objective=clm", "peft=ptuning", "peft.n_virtual_tokens=17"],
        "peft.n_virtual_tokens",
        "plus peft.n_virtual_tokens=17",
    ),
    "frozen_tied_decoder": (
        lambda tmp: ["model=gpt_tiny", "objective=clm", "peft=frozen"],
        "peft.method",
        "leaves nothing to train",
    ),
    "fp16_mixed_on_cpu": (lambda tmp: ["trainer.precision=16-mixed"], "trainer.precision", "bf16-mixed"),
    "fp16_true_on_cpu": (lambda tmp: ["trainer.precision=16-true"], "trainer.precision", "bf16-mixed"),
    "gpu_strategy_on_cpu": (lambda tmp: ["strategy=deepspeed_zero2"], "trainer.strategy", "CUDA GPUs only"),
    "no_corpus_file": (
        lambda tmp: [f"data.corpus.paths=[{tmp}/nowhere/*.txt]"],
        "data.corpus.paths",
        "matches no file",
    ),
    "empty_corpus_file": (
        lambda tmp: [f"data.corpus.paths=[{write(tmp / 'empty.txt', '')}]"],
        "data.corpus.paths",
        "empty.txt is empty",
    ),
    "latin1_corpus_file": (
        lambda tmp: [f"data.corpus.paths=[{write(tmp / 'latin.txt', LATIN1)}]"],
        "data.corpus.paths",
        "latin.txt is not UTF-8 (byte 18, line 1)",
    ),
    "latin1_label_file": (
        lambda tmp: [*LABELED, f"data.source.path={write(tmp / 'latin.csv', LATIN1_CSV)}"],
        "data.source.path",
        "latin.csv is not UTF-8 (byte 33, line 2)",
    ),
    "unseen_test_label": (
        topics_with_an_unseen_test_label,
        "data.source.test_path",
        "has the label 'music', which the training split",
    ),
    "resume_another_shape": (
        checkpoint_of_another_shape,
        "ckpt_path",
        "holds another model: this run's model has d_model=32 (checkpoint: 64)",
    ),
    # the tuning method's settings are read with the rest, before the tokenizer and token arrays
    "lora_rank_zero": (lambda tmp: ["peft=lora", "peft.rank=0"], "peft.rank", "must be a positive integer"),
    "unknown_peft_key": (lambda tmp: ["peft=lora", "+peft.ranks=4"], "peft.ranks", "is not a setting of"),
    "unknown_peft_method": (lambda tmp: ["peft.method=lorra"], "peft.method", "is not one of none, frozen"),
    "max_steps_zero": (lambda tmp: ["trainer.max_steps=0"], "trainer.max_steps", "trains nothing"),
    "accumulate_zero": (
        lambda tmp: ["trainer.accumulate_grad_batches=0"],
        "trainer.accumulate_grad_batches",
        "must be a whole number of batches, at least 1",
    ),
    "precision_typo": (lambda tmp: ["trainer.precision=bf15-mixed"], "trainer.precision", "is not one of"),
    "unknown_objective_key": (
        lambda tmp: ["+objective.nsp_weigth=2"],
        "objective.nsp_weigth",
        "is not a setting of objective.kind=mlm",
    ),
    "decoder_with_mlm": (lambda tmp: ["model=gpt_tiny", "objective=mlm"], "objective", "causal decoder"),
    "classify_a_corpus": (lambda tmp: ["objective=classify"], "data", "reads a labeled set"),
}
GPU_ONLY = {"fp16_mixed_on_cpu", "fp16_true_on_cpu", "gpu_strategy_on_cpu"}


@pytest.mark.parametrize(
    "case", [pytest.param(name, marks=[NO_GPU] if name in GPU_ONLY else []) for name in CASES]
)
def test_a_bad_input_is_refused_in_one_line_and_nothing_is_written(make_cfg, tmp_path, case):
    overrides, key, words = CASES[case]
    settings = overrides(tmp_path)
    cfg = make_cfg(*settings, tiny="data=csv" not in settings)
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    error = caught.value
    assert error.key == key and words in str(error) and "\n" not in str(error)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
    cache = cfg.data.get("cache_dir")
    assert not (cache and list(Path(cache).glob("*/*"))), "a rejected input left a cache entry"


def test_an_unknown_preset_is_named_with_the_presets_of_its_group():
    conf = Path(CONFIG_DIR)
    assert unknown_preset(["model=bert_tiny", "peft=lora", "trainer.max_steps=3"]) is None
    assert unknown_preset(["+model=bert_huge", "~logger", "hydra/launcher=x", "model=null"]) is None
    problem = unknown_preset(["-m", "model=bert_tiny,bert_huge"], conf)
    assert problem is not None and problem.startswith("model=bert_huge is not a preset; choose one of ")
    assert "bert_base, bert_large" in problem and problem.endswith("(conf/model/)")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["model=bert_huge"], "model=bert_huge is not a preset", id="unknown_preset"),
        pytest.param(["peft=lora", "peft.rank=0"], "peft.rank=0 must be a positive integer", id="lora_rank"),
        pytest.param(["trainer.precision=16-mixed"], "trainer.precision=16-mixed", id="fp16", marks=NO_GPU),
        pytest.param(
            ["data=text_files", "data.corpus.paths=[{tmp}/latin.txt]"], "latin.txt is not UTF-8", id="latin1"
        ),
    ],
)
def test_on_the_command_line_a_bad_input_is_one_error_line_and_exit_2(tmp_path, args, words):
    write(tmp_path / "latin.txt", LATIN1)
    result = run_cli(
        "train.py",
        *(arg.format(tmp=tmp_path) for arg in args),
        f"hydra.run.dir={tmp_path}/run",
        f"paths.data_dir={tmp_path}/data",
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert result.stderr.rstrip().endswith(errors[0])  # the last line; no traceback follows
    assert not (tmp_path / "data").exists() and not (tmp_path / "run" / "checkpoints").exists()
