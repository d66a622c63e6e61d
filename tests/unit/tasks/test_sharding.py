"""Building a task on the meta device (strategy=fsdp with meta_init=true, on every rank but 0).

The two-process runs (rank 1 on the meta device, its shards sent from rank 0) are in
tests/integration/test_strategies.py; these check, in one process, what those runs rely on.
"""

from __future__ import annotations

import pytest
import torch
from torchmetrics import Metric

from lmforge.run.strategies import FSDP2Strategy
from lmforge.tasks import BertPretraining, CausalLMPretraining, SequenceClassification
from lmforge.tasks.sharding import builds_on_meta, is_on_meta, materialize


def model(target: str, **extra) -> dict:
    shape = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_seq_len": 32}
    return {"_target_": f"lmforge.models.{target}", **shape, **extra}


TASKS = {
    "bert mlm+nsp": lambda: BertPretraining(model("BertConfig"), {"nsp": True}, {"lr": 1e-3}),
    "llama clm": lambda: CausalLMPretraining(model("LlamaConfig", n_kv_heads=2), {}, {"lr": 1e-3}),
    "gpt sinusoidal clm": lambda: CausalLMPretraining(
        model("GPTConfig", position="sinusoidal"), {}, {"lr": 1e-3}
    ),
    "gpt classify, lora": lambda: SequenceClassification(
        model("GPTConfig"), {}, {"lr": 1e-3}, ["a", "b"], peft={"method": "lora", "lr": 1e-3}
    ),
    "bert classify, prompt": lambda: SequenceClassification(
        model("BertConfig"), {}, {"lr": 1e-3}, ["a", "b"], peft={"method": "prompt", "lr": 1e-2}
    ),
}


@pytest.mark.parametrize("name", TASKS)
def test_a_task_built_on_the_meta_device_holds_no_weights_and_real_metrics(name):
    with torch.device("meta"):
        task = TASKS[name]()
    assert all(p.is_meta for p in task.parameters())
    metrics = [m for m in task.modules() if isinstance(m, Metric)]
    assert metrics and all(not s.is_meta for m in metrics for s in m.metric_state.values())


@pytest.mark.parametrize("name", TASKS)
def test_materialising_recomputes_the_tables_no_checkpoint_holds(name):
    torch.manual_seed(0)
    real = TASKS[name]()
    with torch.device("meta"):
        task = TASKS[name]()
    materialize(task, torch.device("cpu"))
    assert not is_on_meta(task)
    # the weights are left for rank 0's broadcast; the position tables must already be right
    task.load_state_dict(real.state_dict())
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(task.eval().backbone(ids), real.eval().backbone(ids), atol=0, rtol=0)


def test_only_the_ranks_but_0_of_a_meta_init_strategy_build_on_the_meta_device():
    meta, full = FSDP2Strategy(meta_init=True), FSDP2Strategy()
    assert [builds_on_meta(meta, rank) for rank in (0, 1, 2)] == [False, True, True]
    assert not builds_on_meta(full, 1)
    assert not builds_on_meta(object(), 1)  # any other strategy
