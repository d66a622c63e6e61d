"""Lightning callbacks of our own (the rest come from Lightning, configured in conf/callbacks/)."""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar
from torch.distributed.tensor import DTensor

from lmforge.errors import ConfigError, TrainingDiverged
from lmforge.run.memory import peak_bytes, reset_peak

log = logging.getLogger("lmforge.run.callbacks")


class ValidateLastStep(Callback):
    """Validate the final model even when ``val_check_interval`` does not divide ``max_steps``.

    At the last step it asks the trainer to stop, and Lightning validates before stopping, so the
    final metrics are logged at the same step numbering as the others and reach ModelCheckpoint.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, reading ``Epoch 3`` (not ``Epoch 3/-2``) when the run is bounded by
    steps or time rather than epochs (``trainer.max_epochs=-1``, our presets' default)."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch)
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs < 0:
            description = description.replace(
                f"Epoch {current_epoch}/{max_epochs - 1}", f"Epoch {current_epoch}"
            )
        return description


class PeakMemory(Callback):
    """Logs ``train/peak_memory_gb``: the most GPU memory allocated, or on CPU the process's peak
    resident set size, since training started."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reset_peak(trainer.strategy.root_device)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % max(1, trainer.log_every_n_steps):
            return
        peak = peak_bytes(trainer.strategy.root_device)
        pl_module.log("train/peak_memory_gb", peak / 1e9, on_step=True, on_epoch=False)


class Preemption(Callback):
    """Save ``last.ckpt`` and stop cleanly when the job is asked to end (SIGTERM, or SLURM's SIGUSR1).

    A scheduler that preempts a job, or reaches its time limit, sends SIGTERM (SLURM can send SIGUSR1
    ahead of time with ``--signal=USR1@90``) and kills the job a grace period later. The handler only
    sets a flag: at the end of the batch in progress (of the optimiser step in progress, when
    gradients are accumulated over several batches) the trainer saves ``path`` and stops, so
    ``train.py`` exits with status 0 and a requeued job resumes from that checkpoint (``resume=auto``).
    The save comes first, before the validation Lightning runs when a run stops: should the grace
    period run out during validation, the checkpoint is already whole (saves are atomic).

    The handlers replace Lightning's own for these signals during training (its SIGTERM handler
    raises an exception at the next batch, exiting with an error; its SLURM one saves an ``hpc_ckpt``
    and requeues) and the previous ones come back when training ends. Under several processes every
    rank learns of a signal that reached any of them, so all save and stop at the same step.
    """

    def __init__(self, path: str, signals: Sequence[str] = ("SIGTERM", "SIGUSR1")) -> None:
        self.path = path
        self.signals = [
            getattr(signal, name) for name in signals if hasattr(signal, name)
        ]  # no SIGUSR1 on Windows
        self.received: int | None = None
        self.saved_at: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_train_start, not on_fit_start: Lightning installs its handlers in between and would chain ours
        self.received, self.saved_at = None, None
        if threading.current_thread() is not threading.main_thread():  # signal.signal refuses other threads
            log.warning("training runs outside the main thread: SIGTERM/SIGUSR1 will not save a checkpoint")
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.received = signum  # nothing else in a signal handler: the batch end does the work

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        received = self.received is not None
        if trainer.world_size > 1:  # one rank's signal stops them all, at the same step
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received or self.saved_at is not None:
            return
        if trainer.fit_loop._should_accumulate():  # mid-step: a checkpoint would lose the batches' gradients
            return
        name = signal.Signals(self.received).name if self.received is not None else "a signal on another rank"
        log.warning(
            "%s received at step %d: saving %s and stopping (exit status 0; rerun with resume=auto or "
            "ckpt_path=%s to go on)",
            name,
            trainer.global_step,
            self.path,
            self.path,
        )
        trainer.save_checkpoint(self.path)
        self.saved_at = trainer.global_step
        trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class RandomStates(Callback):
    """Keep the random states of Python, NumPy and torch (CPU and CUDA) in checkpoints, one per process,
    and set them again when a resumed run starts training, so its dropout draws what the uninterrupted
    run's did. Lightning keeps none of them.

    They are taken when a checkpoint is saved, after a training step, and set in ``on_train_start``,
    after the sanity check, just before the next step: nothing in between draws from them (our loaders
    draw from generators of their own, ``ResumableLoader``; evaluation runs without dropout). A
    checkpoint written by another number of processes holds other ranks' states: they stay as seeded,
    with a warning.
    """

    KEY = "random_states"

    def __init__(self) -> None:
        self._saved: list[dict[str, Any]] | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = random_states()
        if trainer.world_size > 1:  # every rank saves; rank 0 writes the file
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, states)
            checkpoint[self.KEY] = gathered
        else:
            checkpoint[self.KEY] = [states]

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._saved = checkpoint.get(self.KEY)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        if len(saved) != trainer.world_size:
            log.warning(
                "the checkpoint holds the random states of %d process(es), this run has %d: they are "
                "not restored, so dropout draws other numbers than an uninterrupted run",
                len(saved),
                trainer.world_size,
            )
            return
        set_random_states(saved[trainer.global_rank])


def random_states() -> dict[str, Any]:
    """This process's global random states, as tensors and plain data (checkpoints load weights_only)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_random_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


NAN_POLICIES = ("stop", "skip")


class NonFiniteGuard(Callback):
    """Stop the run (``policy=stop``) or skip the step (``policy=skip``) when the loss or the gradients
    are NaN or infinite.

    The check runs in ``on_before_optimizer_step``, after the backward pass and before the optimiser
    touches the weights, so the weights never take a non-finite update. ``stop`` raises
    ``TrainingDiverged`` (one line, exit status 3): no checkpoint is written after it, so ``last.ckpt``
    keeps the last good state. ``skip`` drops the step's gradients (``grad = None``: AdamW then leaves
    those weights and their moments alone, a true skip, not a zero-gradient step that would still
    move them by momentum and weight decay) and counts it in ``train/skipped_steps``.

    With fp16 mixed precision the gradient scaler already skips steps whose gradients overflowed and
    lowers its scale (that is how it finds one), so gradients are not checked then; the loss still is,
    at the batch end: a non-finite loss comes from the forward pass, which no scale can fix.
    """

    def __init__(self, policy: str = "stop") -> None:
        if policy not in NAN_POLICIES:
            raise ConfigError(
                "callbacks.nan_guard.policy",
                f"callbacks.nan_guard.policy={policy} is not one of {', '.join(NAN_POLICIES)}",
            )
        self.policy = policy
        self.skipped = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.skipped = 0

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # the scaler skips overflowed steps itself
        parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        bad = not all_finite([p.grad for p in parameters])
        if trainer.world_size > 1:  # sharded gradients: a shard's NaN must stop or skip every rank
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        if self.policy == "stop":
            raise TrainingDiverged(diverged_message(trainer.global_step, "gradients"))
        for parameter in parameters:
            parameter.grad = None
        self.skipped += 1
        log.warning(
            "non-finite gradients at step %d: step skipped (%d so far)", trainer.global_step, self.skipped
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            if self.policy == "stop":  # the step itself was not taken: gradients or the scaler saw it
                raise TrainingDiverged(diverged_message(trainer.global_step, "loss"))
            if getattr(trainer.precision_plugin, "scaler", None) is not None:
                self.skipped += 1  # the scaler skipped it; without one on_before_optimizer_step counted it
        if self.policy == "skip":
            pl_module.log("train/skipped_steps", float(self.skipped), on_step=True, on_epoch=False)


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every element is finite: one fused norm and one device sync for all the tensors."""
    local = [t.to_local() if isinstance(t, DTensor) else t for t in tensors]  # FSDP2: this rank's shard
    if not local:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(local, error_if_nonfinite=False)))


def diverged_message(step: int, what: str) -> str:
    return (
        f"training diverged: the {what} became NaN or infinite at step {step}; likely causes: a learning "
        "rate too high (lower optim.lr or lengthen optim.warmup_steps), an fp16 overflow (use "
        "trainer.precision=bf16-mixed or 32-true), or bad data in that batch. last.ckpt keeps the last "
        "good state; callbacks.nan_guard.policy=skip skips such steps instead"
    )
