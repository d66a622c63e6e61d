"""Callbacks one at a time: the progress bar's epoch counter, the NaN guard under a gradient scaler."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lmforge.errors import TrainingDiverged
from lmforge.run.callbacks import NonFiniteGuard, ProgressBar


@pytest.mark.parametrize(("max_epochs", "shown"), [(-1, "Epoch 3"), (None, "Epoch 3"), (10, "Epoch 3/9")])
def test_the_progress_bar_counts_epochs_only_against_an_epoch_bound(max_epochs, shown):
    bar = ProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs)  # all the description reads
    assert bar._get_train_description(3).rstrip() == shown  # padded to the validation bar's width


def test_under_a_gradient_scaler_the_guard_leaves_gradients_to_it_and_checks_the_loss():
    """fp16 mixed precision (a GPU): overflowed gradients are the scaler's to skip; a NaN loss is not."""
    logged = []
    module = SimpleNamespace(log=lambda name, value, **options: logged.append((name, value)))
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()), global_step=7, world_size=1)
    weight = torch.nn.Parameter(torch.ones(2))
    weight.grad = torch.tensor([float("inf"), 1.0])
    optimizer = torch.optim.AdamW([weight])
    nan_loss = {"loss": torch.tensor(float("nan"))}

    stop = NonFiniteGuard("stop")
    stop.on_before_optimizer_step(trainer, module, optimizer)
    assert weight.grad is not None  # left to the scaler
    with pytest.raises(TrainingDiverged, match="the loss became NaN or infinite at step 7"):
        stop.on_train_batch_end(trainer, module, nan_loss, None, 0)

    skip = NonFiniteGuard("skip")
    skip.on_before_optimizer_step(trainer, module, optimizer)
    skip.on_train_batch_end(trainer, module, nan_loss, None, 0)
    assert skip.skipped == 1 and logged[-1] == ("train/skipped_steps", 1.0)
