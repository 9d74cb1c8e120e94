"""Training on a cluster: the SLURM environment, submitit's requeue signal handled between two
batches, and the strategy (DDP with unused-parameter detection on several devices).
"""

from __future__ import annotations

import os
import signal
import threading

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.environments import SLURMEnvironment

from gan_stylizer.training.callbacks import PeriodicCheckpoint


class RequeueAtBatchEnd(Callback):
    """Runs the requeue handler of a cluster job between two batches, never inside one.

    Lightning's SLURM handler (SIGUSR1) saves an hpc checkpoint the moment the signal arrives,
    and submitit's (SIGUSR2) requeues at once: either can fall between D's and G's step of a
    batch. This wraps the handler found when training starts: a signal only marks itself
    pending, and at the next batch end, where the ranks agree (one tiny all-reduce), the handler
    runs on every rank, after `save_first` writes last.ckpt where the handler saves nothing
    itself (submitit). The resumed run then repeats or skips no step. (Blocking the signal
    instead would not work: a signal sent to a process goes to any thread that does not block
    it.)"""

    def __init__(self, signum: int, save_first: PeriodicCheckpoint | None = None) -> None:
        self.signum = signum
        self.save_first = save_first
        self._handler = None
        self._pending = False

    def _defer(self, signum, frame) -> None:
        self._pending = True

    def on_train_start(self, trainer, pl_module) -> None:
        handler = signal.getsignal(self.signum)  # Lightning registers its own at fit() start
        if callable(handler) and threading.current_thread() is threading.main_thread():
            self._handler = handler
            signal.signal(self.signum, self._defer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._handler is None:
            return
        if trainer.strategy.reduce_boolean_decision(self._pending, all=False):
            self._pending = False
            if self.save_first is not None:
                self.save_first.save_last(trainer, pl_module)
            self._handler(self.signum, None)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._handler is not None and signal.getsignal(self.signum) == self._defer:
            signal.signal(self.signum, self._handler)


def submitit_signal() -> int | None:
    """The signal on which submitit checkpoints and requeues its job (SIGUSR2 unless
    SUBMITIT_PREEMPT_SIGNAL says otherwise), when this process is a submitit job."""
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


def slurm_environment() -> SLURMEnvironment | None:
    """Lightning's SLURM environment when this process is a SLURM task (srun). Exactly one
    mechanism requeues a job: submitit's (SIGUSR2) when hydra/launcher=submitit_slurm submitted
    it, so Lightning's auto-requeue is off there; otherwise Lightning's (SIGUSR1: an hpc
    checkpoint, then `scontrol requeue`)."""
    if not SLURMEnvironment.detect():
        return None
    return SLURMEnvironment(auto_requeue=os.environ.get("SUBMITIT_EXECUTOR") != "slurm")


def choose_strategy(t) -> str:
    """Plain DDP fails on a GAN ("parameters that were not used": D gets no gradient in G's
    backward and vice versa), so several devices get DDP with unused-parameter detection."""
    if t.strategy != "auto":
        return t.strategy
    devices = t.devices
    if devices in ("auto", -1, "-1"):
        count = torch.cuda.device_count() if t.accelerator in ("auto", "gpu", "cuda") else 1
    elif isinstance(devices, list | tuple):
        count = len(devices)
    else:
        count = int(devices)
    return "ddp_find_unused_parameters_true" if count * t.num_nodes > 1 else "auto"
