"""Instruction tuning (objective=sft) in runs: every tuning method on GPT and LLaMA, eval's generation
metrics, generate's prompt format, merge, zero-shot eval of a pretraining checkpoint, the prepared sets
and the errors."""

import json
import math
import shlex
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lmforge.cli.eval import evaluate
from lmforge.cli.generate import run as generate_run
from lmforge.cli.merge import merge
from lmforge.cli.train import train
from lmforge.data.sft import InstructionFiles
from lmforge.errors import ConfigError
from lmforge.objectives.settings import InstructionTuningSettings
from lmforge.peft import PEFT_METHODS
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.tasks.text_metrics import GenerationMetrics
from tests.conftest import CONF, FIXTURES, TINY, compose_config, metrics, prepare_script, run_cli

DEFINITIONS = FIXTURES / "sft" / "definitions.jsonl"
DEBIAN = FIXTURES / "debian"
TEMPLATE = InstructionTuningSettings().template

# A tiny decoder instruction-tuned from scratch on the 52 definitions of the fixture, CPU, quiet.
SFT = [
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.n_layers=1",
    "model.max_seq_len=128",
    "data=pairs_jsonl",
    f"data.pairs.path={DEFINITIONS}",
    "data.tokenizer.vocab_size=400",
    "data.max_seq_len=96",
    "data.batch_size=8",
    "data.val_fraction=0.2",
    "data.test_fraction=0.2",
    "callbacks.rich_progress_bar=null",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]


# ------------------------------------------------------------------------------------------------
# Runs: every tuning method, a whole run with eval and generate, merge, zero-shot


@pytest.mark.parametrize("model", ["gpt_tiny", "llama_tiny"])
@pytest.mark.parametrize("method", list(PEFT_METHODS))
def test_every_tuning_method_trains_a_step_under_sft(make_cfg, model, method):
    cfg = make_cfg(
        f"model={model}",
        *SFT,
        f"peft={method}",
        "trainer.max_steps=1",
        "+trainer.limit_val_batches=0",
        "callbacks.model_checkpoint=null",
        tiny=False,
    )
    if method == "frozen" and model == "gpt_tiny":  # tied embeddings: the LM head is frozen with the rest
        with pytest.raises(ConfigError, match=r"peft.method=frozen leaves nothing to train"):
            resolve(cfg)
        return
    assert cfg.objective.kind == "sft"
    train(cfg)
    rows = metrics(Path(cfg.paths.output_dir))
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    assert len(losses) == 1 and math.isfinite(losses[0])


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """A tiny GPT instruction-tuned from scratch until it repeats the training responses."""
    tmp = tmp_path_factory.mktemp("sft_run")
    cfg = compose_config(
        ["model=gpt_tiny", *SFT, "trainer.max_steps=60", "trainer.val_check_interval=30", "optim.lr=1e-2"],
        tmp,
    )
    train(cfg)
    return cfg, Path(cfg.paths.output_dir)


def test_a_run_logs_the_response_loss_and_it_falls(sft_run):
    _, run = sft_run
    rows = metrics(run)
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0
    val = [row for row in rows if "val/loss" in row]
    assert len(val) == 2 and val[-1]["val/perplexity"] == pytest.approx(
        math.exp(val[-1]["val/loss"]), rel=1e-4
    )
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["objective"]["template"] == TEMPLATE
    assert "<|endoftext|>" in checkpoint["InstructionDataModule"]["tokenizer"]


def eval_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("eval", overrides=list(overrides), return_hydra_config=False)
    OmegaConf.set_struct(cfg, False)
    return cfg


def test_eval_scores_the_responses_it_generates_and_writes_them(sft_run, tmp_path):
    _, run = sft_run
    cfg = eval_cfg(
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        f"paths.output_dir={tmp_path}",
        "trainer.enable_progress_bar=false",
    )
    scores = evaluate(cfg)
    assert {"test/loss", "test/perplexity", "test/exact_match", "test/chrf", "test/rouge_l"} <= set(scores)
    records = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    test_prompts = 11  # of 52: 20 % each to validation and test, whole prompts
    assert len(records) == test_prompts and set(records[0]) == {"prompt", "reference", "generated"}
    hand = GenerationMetrics()
    hand.update([r["generated"] for r in records], [r["reference"] for r in records])
    assert scores["test/exact_match"] == pytest.approx(float(hand.compute()["exact_match"]))

    fewer = eval_cfg(
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        f"paths.output_dir={tmp_path / 'fewer'}",
        "trainer.enable_progress_bar=false",
        "objective=sft",
        "objective.eval_generations=3",
        "objective.template='{prompt} ->'",  # what the model trained with is kept
    )
    again = evaluate(fewer)
    assert len((tmp_path / "fewer" / "generations.jsonl").read_text().splitlines()) == 3
    assert again["test/loss"] == pytest.approx(scores["test/loss"])


def generate_settings(ckpt: Path, **values):
    """``conf/generate.yaml`` for ``ckpt`` with ``values`` set, as ``python generate.py`` composes it."""
    settings = OmegaConf.load(CONF / "generate.yaml")
    settings.pop("defaults")
    settings.pop("hydra")
    settings.ckpt_path = str(ckpt)
    for key, value in values.items():
        settings[key] = value
    return settings


def test_generate_puts_the_prompt_in_the_checkpoint_template(sft_run):
    _, run = sft_run
    cfg = generate_settings(run / "checkpoints" / "last.ckpt", prompt="Define: lamp", max_new_tokens=12)
    (answer,) = generate_run(cfg)
    assert answer.startswith(TEMPLATE.replace("{prompt}", "Define: lamp"))
    cfg.prompt_format = "raw"
    (raw,) = generate_run(cfg)
    assert raw.startswith("Define: lamp") and "### Instruction" not in raw


@pytest.mark.parametrize("model", ["gpt_tiny", "llama_tiny"])
def test_a_merged_lora_checkpoint_generates_the_same_text(make_cfg, tmp_path, model):
    cfg = make_cfg(
        f"model={model}",
        *SFT,
        "peft=lora",
        "peft.lr=5e-2",
        "trainer.max_steps=12",
        "trainer.val_check_interval=12",
        tiny=False,
    )
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    merged = merge(str(ckpt), tmp_path / "merged") / "merged.ckpt"
    prompts = ["Define: lamp", "Define: river", "Define: kettle"]

    def answers(path: Path) -> list[str]:
        return generate_run(generate_settings(path, prompts=prompts, max_new_tokens=16))

    assert answers(merged) == answers(ckpt)
    # and LoRA is what makes that text: without its updates the same prompts are answered otherwise
    tuned, tokenizer, _ = load_task(str(ckpt))
    encoded = [
        tokenizer.encode(tuned.objective.prompt_text(p), add_special_tokens=False).ids for p in prompts
    ]
    with_lora = tuned.respond(encoded)
    updates = [p for name, p in tuned.named_parameters() if ".lora." in name and name.endswith(".b")]
    assert updates and all(p.abs().sum() > 0 for p in updates)  # B starts at zero: LoRA did train
    with torch.no_grad():
        for update in updates:
            update.zero_()
    assert tuned.respond(encoded) != with_lora
    assert load_task(str(merged))[0].respond(encoded) == with_lora


def test_zero_shot_eval_scores_a_pretraining_checkpoint_on_a_pair_set(tmp_path):
    pretrain = compose_config(
        [
            "model=gpt_tiny",
            *TINY,
            "model.max_seq_len=128",
            "data.max_seq_len=32",
            "trainer.max_steps=3",
            "trainer.val_check_interval=3",
        ],
        tmp_path / "pretrain",
    )
    train(pretrain)
    ckpt = Path(pretrain.paths.output_dir) / "checkpoints" / "last.ckpt"
    before = torch.load(ckpt, weights_only=False)["state_dict"]
    cfg = eval_cfg(
        f"ckpt_path={ckpt}",
        f"paths.output_dir={tmp_path / 'eval'}",
        "trainer.enable_progress_bar=false",
        "data=pairs_jsonl",  # chooses objective=sft
        f"data.pairs.path={DEFINITIONS}",
        "data.val_fraction=0.2",
        "data.test_fraction=0.2",
        "data.max_seq_len=96",
        "objective.max_new_tokens=4",
    )
    scores = evaluate(cfg)
    assert {"test/loss", "test/exact_match", "test/chrf", "test/rouge_l"} <= set(scores)
    assert math.isfinite(scores["test/loss"])
    assert len((tmp_path / "eval" / "generations.jsonl").read_text().splitlines()) == 11
    after = torch.load(ckpt, weights_only=False)["state_dict"]
    assert all(torch.equal(before[name], after[name]) for name in before)  # nothing was trained or written


# ------------------------------------------------------------------------------------------------
# The prepared sets


def test_gcide_definitions_are_the_first_sense_of_each_headwords_own_entry(tmp_path):
    script = prepare_script("gcide_definitions")
    assert script.run(script.main, ["--debian", str(DEBIAN), "--out", str(tmp_path)]) == 0
    splits = {
        split: [json.loads(line) for line in (tmp_path / "gcide_definitions" / f"{split}.jsonl").open()]
        for split in ("train", "val", "test")
    }
    pairs = {record["prompt"]: record["response"] for records in splits.values() for record in records}
    assert pairs == {
        "Define: lantern": "A case with clear sides that shelters a light from the wind.",
        "Define: ferry": "To carry over water in a boat.",  # cut at its first semicolon
        "Define: kettle": "a metal pot for boiling water, with a lid and a spout.",
        "Define: naivety": "The quality of being naive.",
    }  # lanthorn points into Lantern's entry: left out
    assert all(splits.values())
    pool = InstructionFiles(
        *(str(tmp_path / "gcide_definitions" / f"{s}.jsonl") for s in ("train", "val", "test"))
    )
    assert len(pool.read("train")) + len(pool.read("val")) + len(pool.read("test")) == 4


def test_a_prepared_pair_preset_builds_and_names_the_command_that_writes_it(make_cfg, tmp_path):
    script = prepare_script("gcide_definitions")
    script.main(["--debian", str(DEBIAN), "--out", str(tmp_path / "data" / "sft")])
    cfg = make_cfg("model=gpt_tiny", "data=gcide_definitions", "data.batch_size=1", tiny=False)
    assert cfg.objective.kind == "sft"
    spec = resolve(cfg)
    datamodule = spec.data.build()
    datamodule.prepare_data()
    assert {split: len(pairs) for split, pairs in datamodule.splits.items()} == {
        "train": 2,
        "val": 1,
        "test": 1,
    }
    missing = make_cfg("model=gpt_tiny", "data=bible_modern", tiny=False)
    with pytest.raises(
        ConfigError, match=r"bible_modern/train.jsonl does not exist .*run `make data-debian`"
    ):
        resolve(missing)


# ------------------------------------------------------------------------------------------------
# Errors, before any work


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (["model=bert_tiny"], "objective", "is a bidirectional encoder and cannot train instruction tuning"),
        (
            ["model=gpt_tiny", "objective.template='Answer:'"],
            "objective.template",
            "must hold {prompt} exactly once",
        ),
        (
            ["model=gpt_tiny", "data=jsonl", f"data.source.path={DEFINITIONS}", "objective=sft"],
            "data",
            "reads prompt/response pairs",
        ),
        (
            ["model=gpt_tiny", "data.pairs.path=missing.jsonl"],
            "data.pairs.path",
            "missing.jsonl does not exist",
        ),
        (["model=gpt_tiny", "objective.eval_generations=-1"], "objective.eval_generations", "integer >= 0"),
    ],
)
def test_bad_settings_are_refused_before_any_work(make_cfg, overrides, key, message):
    pairs = [o for o in SFT if not o.startswith("data.pairs")] if "data=jsonl" in overrides else SFT
    cfg = make_cfg(*pairs, *overrides, tiny=False)
    with pytest.raises(ConfigError, match=message) as error:
        resolve(cfg)
    assert error.value.key == key


def test_sft_on_bert_is_one_line_and_exit_status_2_on_the_command_line(tmp_path):
    result = run_cli("train.py", "model=bert_tiny", *SFT, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "cannot train instruction tuning" in result.stderr and "model=gpt_tiny" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_refuses_the_sft_format_for_a_checkpoint_without_a_template(make_cfg):
    cfg = make_cfg(
        "model=gpt_tiny", "trainer.max_steps=1", "trainer.val_check_interval=1", "data.max_seq_len=32"
    )
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    settings = generate_settings(ckpt, prompt="Define: lamp", prompt_format="sft")
    with pytest.raises(ConfigError, match="prompt_format=sft needs a checkpoint of an objective=sft run"):
        generate_run(settings)


# ------------------------------------------------------------------------------------------------
# The docs


def test_every_command_of_the_instruction_tuning_page_composes():
    page = (CONF.parent / "docs" / "instruction-tuning.md").read_text()
    commands = [
        shlex.split(line.split("   #")[0])
        for line in page.splitlines()
        if line.startswith(("python train.py", "python eval.py", "python generate.py"))
    ]
    assert len(commands) >= 8
    for command in commands:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(Path(command[1]).stem, overrides=command[2:])
        if command[1] == "train.py" and any(arg.startswith("data=") for arg in command):
            assert cfg.objective.kind == "sft" and "pairs" in cfg.data
