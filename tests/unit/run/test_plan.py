"""plan=true's formulas: memory by precision and strategy, steps and validations, activation counts."""

from __future__ import annotations

from omegaconf import OmegaConf

from lmforge.models import BertConfig, BertModel, GPTConfig, build_backbone
from lmforge.run.plan import (
    activation_elements_per_token,
    estimate_memory,
    max_time_seconds,
    planned_steps,
    sharded_parts,
    validations,
)


def test_memory_formula():
    config = GPTConfig(vocab_size=1000, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_seq_len=32)
    backbone = build_backbone(config)
    n = backbone.num_parameters()
    args = dict(backbone=backbone, total=n, trainable=n, world_size=4, batch_size=2, seq_len=16, runtime=7)
    full = estimate_memory(precision="32-true", strategy="ddp", logit_positions=1.0, **args)
    assert (full.weights, full.gradients, full.optimizer) == (4 * n, 4 * n, 8 * n)
    # per layer: attention 3d + 2 kv, feed-forward d + 2 f, residuals 2 d; plus 2 d around the stack
    assert activation_elements_per_token(backbone) == 2 * (5 * 64 + 64 + 2 * 256 + 2 * 64) + 2 * 64
    assert full.activations == 32 * activation_elements_per_token(backbone) * 4
    assert full.logits == 32 * 1000 * 16 and full.runtime == 7
    assert full.total == full.weights + full.gradients + full.optimizer + full.activations + full.logits + 7
    zero3 = estimate_memory(precision="bf16-true", strategy="deepspeed_stage_3", logit_positions=0.0, **args)
    assert (zero3.weights, zero3.gradients, zero3.optimizer) == (2 * n // 4, 2 * n // 4, 4 * n // 4)
    assert zero3.logits == 0
    mixed = estimate_memory(precision="bf16-mixed", strategy="auto", logit_positions=0.15, **args)
    assert mixed.weights == 4 * n and mixed.activations == full.activations // 2


def test_sharding_by_strategy_name():
    assert sharded_parts("ddp") == () and sharded_parts("auto") == ()
    assert sharded_parts("deepspeed_stage_1") == ("optimizer",)
    assert sharded_parts("deepspeed_zero2_offload") == ("optimizer", "gradients")
    assert set(sharded_parts("fsdp")) == {"optimizer", "gradients", "weights"}


def test_steps_validations_and_time_limits():
    trainer = OmegaConf.create({"max_steps": 1000, "max_epochs": -1, "val_check_interval": 300})
    assert planned_steps(trainer, batches_per_epoch=50) == 1000
    assert validations(trainer, 1000, 50) == 4  # at 300, 600, 900 and the last step
    by_epochs = OmegaConf.create({"max_steps": -1, "max_epochs": 3, "accumulate_grad_batches": 2})
    assert planned_steps(by_epochs, batches_per_epoch=50) == 75
    assert max_time_seconds("00:01:30:00") == 5400 and max_time_seconds({"minutes": 2}) == 120


def test_bert_activations_count_no_rotary_or_gate():
    config = BertConfig(vocab_size=100, d_model=32, n_layers=3, n_heads=2, d_ff=64, max_seq_len=16)
    assert activation_elements_per_token(BertModel(config)) == 3 * (5 * 32 + 32 + 2 * 64 + 2 * 32) + 2 * 32
