"""Instruction tuning (objective=sft): the pairs, the loss on the responses alone, packing that keeps pairs
apart, every tuning method on GPT and LLaMA, eval's generation metrics, generate's prompt format, merge,
zero-shot eval of a pretraining checkpoint, the prepared sets and the errors."""

import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lmforge.cli.eval import evaluate
from lmforge.cli.generate import run as generate_run
from lmforge.cli.merge import merge
from lmforge.cli.train import train
from lmforge.data.sft import InstructionFiles, InstructionPair
from lmforge.data.sft.encoding import PackedPairs, PairCollator, PairEncoder, pack
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import end_of_text_id
from lmforge.models import GPTConfig, LlamaConfig, build_backbone
from lmforge.objectives import IGNORE_INDEX
from lmforge.objectives.settings import InstructionTuningSettings
from lmforge.peft import PEFT_METHODS, apply_peft
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.tasks.text_metrics import GenerationMetrics

from .conftest import CONF, FIXTURES, TINY, compose_config, prepare_script, run_cli
from .test_train import metrics

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


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE tokenizer trained on the fixture's texts."""
    pairs = InstructionFiles(str(DEFINITIONS)).read()
    return TokenizerSettings(kind="bpe", vocab_size=400).train(
        t for p in pairs for t in (p.prompt, p.response)
    )


def encoder(tokenizer, max_seq_len: int = 96) -> PairEncoder:
    settings = InstructionTuningSettings()
    return PairEncoder(tokenizer, settings.prompt_text, end_of_text_id(tokenizer), max_seq_len)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


# ------------------------------------------------------------------------------------------------
# Reading pairs


def test_pairs_are_read_from_prompt_response_and_alpaca_lines(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        {"prompt": "Define: lamp", "response": "A device that gives light.", "source": "ignored"},
        {"instruction": "Say hello.", "input": "", "output": "Hello."},
        {"instruction": "Translate to English.", "input": "bonjour", "output": "good day"},
        {"instruction": "Count to two.", "output": "One, two."},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert InstructionFiles(str(path)).read() == [
        InstructionPair("Define: lamp", "A device that gives light."),
        InstructionPair("Say hello.", "Hello."),
        InstructionPair("Translate to English.\n\nbonjour", "good day"),
        InstructionPair("Count to two.", "One, two."),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "Define: lamp", "response": ', r":2 is not valid JSON"),
        ('["Define: lamp", "A light."]', r":2 is a JSON list, not an object with fields"),
        ('{"prompt": "Define: lamp"}', r":2 has no field 'response' \(its fields: prompt\): give prompt and"),
        ('{"instruction": "Say hi", "input": "x"}', r":2 has no field 'output'"),
        ('{"prompt": "Define: lamp", "response": "  "}', r":2 has an empty 'response'"),
        ('{"prompt": {"word": "lamp"}, "response": "A light."}', r":2 field 'prompt' is a JSON dict"),
    ],
)
def test_a_bad_line_is_refused_naming_its_file_and_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "Define: cup", "response": "A small bowl."}\n' + line + "\n")
    with pytest.raises(ConfigError, match=f"{path}{message}") as error:
        InstructionFiles(str(path)).read()
    assert error.value.key == "data.pairs.path"


# ------------------------------------------------------------------------------------------------
# The loss on the response alone


def test_the_labels_mask_exactly_the_prompt_tokens(tokenizer):
    pair = InstructionPair("Define: lamp", "A device that gives light.")
    encoded, counts = encoder(tokenizer).encode([pair])
    prompt = ids(tokenizer, TEMPLATE.replace("{prompt}", pair.prompt))
    response = ids(tokenizer, pair.response)
    eot = end_of_text_id(tokenizer)
    assert counts == {"cut": 0, "left_out": 0}
    assert encoded[0][0].tolist() == [*prompt, *response, eot] and encoded[0][1] == len(prompt)

    batch = PairCollator(pad_id=eot)([encoded[0]])
    sequence = [*prompt, *response, eot]
    assert batch["input_ids"][0].tolist() == sequence[:-1]
    labels = batch["labels"][0].tolist()
    # the target at position i is token i + 1: the first response token is predicted from the prompt's last
    assert labels == [IGNORE_INDEX] * (len(prompt) - 1) + [*response, eot]


def test_every_response_ends_with_one_end_of_text_token_and_padding_is_ignored(tokenizer):
    pairs = InstructionFiles(str(DEFINITIONS)).read()[:8]
    encoded, _ = encoder(tokenizer).encode(pairs)
    eot = end_of_text_id(tokenizer)
    batch = PairCollator(pad_id=eot, texts=True)([encoded[i] for i in range(len(encoded))])
    for row, pair in enumerate(pairs):
        length = int(batch["attention_mask"][row].sum())
        targets = batch["labels"][row, :length]
        scored = targets[targets != IGNORE_INDEX].tolist()
        assert scored == [*ids(tokenizer, pair.response), eot]  # the response, then one end-of-text
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()  # padding is never a target
    assert batch["responses"] == [pair.response for pair in pairs]
    assert batch["prompt_ids"][0] == ids(tokenizer, TEMPLATE.replace("{prompt}", pairs[0].prompt))


def test_a_long_pair_loses_the_end_of_its_response_and_a_prompt_that_fills_the_block_is_left_out(tokenizer):
    long_response = InstructionPair("Define: lamp", "A device that gives light. " * 20)
    long_prompt = InstructionPair("Define: " + "lamp " * 60, "A light.")
    block = len(ids(tokenizer, TEMPLATE.replace("{prompt}", long_response.prompt))) + 5
    encoded, counts = encoder(tokenizer, max_seq_len=block).encode([long_response, long_prompt])
    assert counts == {"cut": 1, "left_out": 1} and len(encoded) == 1
    sequence, _, _ = encoded[0]
    assert len(sequence) == block + 1  # max_seq_len inputs and as many targets
    assert end_of_text_id(tokenizer) not in sequence.tolist()  # a cut response does not claim to end


# ------------------------------------------------------------------------------------------------
# Packing


def test_packing_fills_rows_with_whole_pairs_each_once():
    lengths = np.array([5, 9, 3, 7, 8, 2, 6, 4])
    blocks = pack(lengths, block_len=12, seed=3)
    assert sorted(np.concatenate(blocks).tolist()) == list(range(len(lengths)))
    assert all(lengths[block].sum() <= 12 for block in blocks)
    assert [b.tolist() for b in blocks] == [b.tolist() for b in pack(lengths, 12, seed=3)]  # seeded


@pytest.mark.parametrize("config", [GPTConfig, LlamaConfig])
@pytest.mark.parametrize("method", ["none", "prompt", "prefix"])
def test_a_packed_pair_is_scored_as_if_it_were_alone(tokenizer, config, method):
    torch.manual_seed(0)
    model = config(
        vocab_size=tokenizer.get_vocab_size(),
        d_model=32,
        n_layers=2,
        n_heads=2,
        n_kv_heads=1 if config is LlamaConfig else None,  # grouped-query attention on LLaMA
        d_ff=64,
        max_seq_len=160,
    )
    backbone = build_backbone(model).eval()
    if method != "none":
        apply_peft(backbone, [], {"method": method})
    pairs = InstructionFiles(str(DEFINITIONS)).read()[:6]
    encoded, _ = encoder(tokenizer).encode(pairs)
    eot = end_of_text_id(tokenizer)
    rows = PackedPairs(encoded, block_len=128, pad_id=eot, seed=0)
    assert 1 < len(rows) < len(encoded)  # some rows hold several pairs
    for row_index in range(len(rows)):
        row = rows[row_index]
        with torch.no_grad():
            packed = backbone.logits(
                backbone(
                    row["input_ids"][None],
                    position_ids=row["position_ids"][None],
                    segment_ids=row["segment_ids"][None],
                )
            )[0]
        start = 0
        for pair in rows.blocks[row_index].tolist():
            alone = PairCollator(eot)([encoded[pair]])
            with torch.no_grad():
                expected = backbone.logits(backbone(alone["input_ids"]))[0]
            span = slice(start, start + expected.shape[0])
            assert torch.allclose(packed[span], expected, atol=1e-5), (row_index, pair)
            assert torch.equal(row["labels"][span], alone["labels"][0])
            start += expected.shape[0]


def test_without_segment_ids_a_packed_pair_would_see_the_one_before_it(tokenizer):
    """The control of the test above: the block-diagonal mask is what keeps the scores equal."""
    torch.manual_seed(0)
    backbone = build_backbone(
        GPTConfig(
            vocab_size=tokenizer.get_vocab_size(), d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=160
        )
    ).eval()
    encoded, _ = encoder(tokenizer).encode(InstructionFiles(str(DEFINITIONS)).read()[:6])
    rows = PackedPairs(encoded, block_len=128, pad_id=end_of_text_id(tokenizer), seed=0)
    row_index = next(i for i, block in enumerate(rows.blocks) if len(block) > 1)
    row = rows[row_index]
    with torch.no_grad():
        crossed = backbone.logits(backbone(row["input_ids"][None], position_ids=row["position_ids"][None]))[0]
        kept = backbone.logits(
            backbone(
                row["input_ids"][None],
                position_ids=row["position_ids"][None],
                segment_ids=row["segment_ids"][None],
            )
        )[0]
    second = slice(len(encoded[int(rows.blocks[row_index][0])][0]) - 1, 128)
    assert not torch.allclose(crossed[second], kept[second], atol=1e-3)


# ------------------------------------------------------------------------------------------------
# Generation metrics


def test_generation_metrics_against_a_hand_computation():
    scores = GenerationMetrics()
    scores.update(["The  cat sat ", "abcdefg"], ["The cat sat", "abcdefh"])
    scores.update(["the cat sat"], ["The cat sat on the mat."])
    values = {name: float(value) for name, value in scores.compute().items()}
    assert values["exact_match"] == pytest.approx(1 / 3)  # whitespace collapses, case counts
    # ROUGE-L F1 per text: 1; 0 (one word each, different); LCS 3 of 3 and 6 words: P 1, R 1/2, F 2/3
    assert values["rouge_l"] == pytest.approx((1 + 0 + 2 / 3) / 3, abs=1e-4)

    chrf = GenerationMetrics()
    chrf.update(["abcdefg"], ["abcdefh"])
    # character n-grams of order n: 8 - n in each text, all but the last one shared, so precision =
    # recall = (7 - n) / (8 - n); chrF averages them over n = 1..6 (beta does not matter when P = R)
    expected = sum((7 - n) / (8 - n) for n in range(1, 7)) / 6
    assert float(chrf.compute()["chrf"]) == pytest.approx(expected, abs=1e-5)


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
