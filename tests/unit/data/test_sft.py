"""Instruction tuning (objective=sft) without a training loop: reading pairs, the loss on the responses
alone, packing that keeps pairs apart (a packed pair scores as if alone), the generation metrics."""

import json

import numpy as np
import pytest
import torch

from lmforge.data.sft import InstructionFiles, InstructionPair
from lmforge.data.sft.encoding import PackedPairs, PairCollator, PairEncoder, pack
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import end_of_text_id
from lmforge.models import GPTConfig, LlamaConfig, build_backbone
from lmforge.objectives import IGNORE_INDEX
from lmforge.objectives.settings import InstructionTuningSettings
from lmforge.peft import apply_peft
from lmforge.tasks.text_metrics import GenerationMetrics
from tests.conftest import FIXTURES

DEFINITIONS = FIXTURES / "sft" / "definitions.jsonl"
TEMPLATE = InstructionTuningSettings().template


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
