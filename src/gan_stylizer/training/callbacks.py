"""The training run's callbacks: checkpoints written atomically (and on Ctrl-C or SIGTERM),
Ctrl-C at a batch end, the sample grids, the end-of-run summary, the progress bar.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gan_stylizer.errors import CheckpointError
from gan_stylizer.io import atomic
from gan_stylizer.io.images import save_image
from gan_stylizer.io.sheets import caption, make_grid
from gan_stylizer.progress import progress_line
from gan_stylizer.system import StylizerSystem
from gan_stylizer.training.records import evaluate_for_card, trained_alpha, write_model_card

log = logging.getLogger(__name__)


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full...); the run stops with exit status 1."""

    exit_code = 1


class PeriodicCheckpoint(Callback):
    """Writes checkpoints/last.ckpt every `every` generator steps and at the end, and keeps a
    copy as step_NNNNNN.ckpt every `keep_every` steps (0: none). Every write goes to a temporary
    file first and is renamed into place, so a kill at any moment (SIGKILL included) leaves the
    previous good checkpoint. A new last.ckpt supersedes the hpc_ckpt_N.ckpt files of Lightning's
    SLURM requeue (saved at the same or an earlier step), which are then removed."""

    def __init__(self, dirpath: Path, every: int, keep_every: int | None = None) -> None:
        self.dirpath = dirpath
        self.every = every
        self.keep_every = every if keep_every is None else keep_every
        self._saved_at = -1

    def _save(self, trainer: L.Trainer, step: int, keep_step_file: bool) -> bool:
        """Write last.ckpt (and step_NNNNNN.ckpt); False if this step is saved already.
        Collective: every rank calls it; rank 0 writes."""
        if step == self._saved_at:
            return False
        tmp = self.dirpath / f".last.ckpt.tmp{os.getpid()}"
        step_tmp = self.dirpath / f".step.tmp{os.getpid()}"
        problem = ""
        # Trainer.save_checkpoint's steps, with the outcome agreed by all ranks: an error on
        # rank 0 alone would leave the others waiting in its barrier until the timeout.
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        try:
            trainer.strategy.save_checkpoint(checkpoint, tmp)  # rank 0 writes
            if trainer.is_global_zero:
                if keep_step_file:
                    shutil.copyfile(tmp, step_tmp)
                    os.replace(step_tmp, self.dirpath / f"step_{step:06d}.ckpt")
                os.replace(tmp, self.dirpath / "last.ckpt")
        except OSError as err:  # disk full, quota, a vanished network share
            problem = err.strerror or str(err)
        except BaseException:  # Ctrl-C mid-write: no temporary file left, nothing claimed
            tmp.unlink(missing_ok=True)
            step_tmp.unlink(missing_ok=True)
            raise
        if not trainer.strategy.reduce_boolean_decision(not problem, all=True):
            tmp.unlink(missing_ok=True)
            step_tmp.unlink(missing_ok=True)
            raise CheckpointWriteError(
                f"{self.dirpath / 'last.ckpt'}: could not write the checkpoint of generator step "
                f"{step} ({problem or 'failed on another rank'}); the previous checkpoint is "
                "intact: free space and run the same command to resume from it"
            )
        self._saved_at = step
        if trainer.is_global_zero:
            for superseded in self.dirpath.glob("hpc_ckpt_*.ckpt"):
                superseded.unlink(missing_ok=True)
        return True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.g_step
        keep = self.keep_every > 0 and step % self.keep_every == 0
        if keep or step % self.every == 0:
            self._save(trainer, step, keep_step_file=keep)

    def save_last(self, trainer: L.Trainer, pl_module: StylizerSystem) -> bool:
        return self._save(trainer, pl_module.g_step, keep_step_file=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save_last(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Ctrl-C, or SIGTERM (`kill`, SLURM preemption, which Lightning turns into a
        # SIGTERMException between two batches): keep what was learned since the last
        # checkpoint. Saving is collective: one process, or SIGTERM in processes that SLURM or
        # torchrun started, where Lightning stops every rank at the same batch. Under DDP
        # started by Lightning itself, the other ranks are being torn down.
        alone = trainer.world_size == 1
        if (isinstance(exception, KeyboardInterrupt) and alone) or (
            isinstance(exception, SIGTERMException) and (alone or trainer.strategy.launcher is None)
        ):
            if self._save(trainer, pl_module.g_step, keep_step_file=False):
                log.warning("interrupted: saved %s", self.dirpath / "last.ckpt")


class TrainingInterrupted(Exception):
    """Ctrl-C: the run stopped between two batches and saved; str() says how to go on."""


class GracefulInterrupt(Callback):
    """Ctrl-C (SIGINT) finishes the batch in flight, writes last.ckpt and stops the run, so the
    saved state is exactly that of a batch end and the same command resumes it exactly. A
    second Ctrl-C stops at once (Lightning's KeyboardInterrupt path; PeriodicCheckpoint saves
    what it can). All ranks stop at the same batch: the decision is reduced across them."""

    def __init__(self, periodic: PeriodicCheckpoint) -> None:
        self.periodic = periodic
        self.stopped_at: int | None = None
        self._previous = None
        self._pending = False

    def _on_sigint(self, signum, frame) -> None:
        if self._pending:  # the second Ctrl-C
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            raise KeyboardInterrupt
        self._pending = True
        print(
            "\ninterrupt: finishing this batch, then saving (Ctrl-C again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    def on_train_start(self, trainer, pl_module) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._previous is None or self.stopped_at is not None:
            return
        if trainer.strategy.reduce_boolean_decision(self._pending, all=False):
            if pl_module.g_step >= pl_module.cfg.trainer.steps:
                return  # the last batch: the run ends normally (saved and summed up)
            self.periodic.save_last(trainer, pl_module)
            self.stopped_at = pl_module.g_step
            trainer.should_stop = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, self._previous)


class SampleGrid(Callback):
    """Every `every` generator steps: the fixed validation photos through G_ema, written as a
    PNG (content | stylized per row; a conditioned generator at each of STRENGTHS, labelled)
    under samples/ and to TensorBoard. Rank 0 only."""

    STRENGTHS = (0.0, 0.5, 1.0)  # the dial's two ends and its middle

    def __init__(self, out_dir: Path, every: int) -> None:
        self.out_dir = out_dir
        self.every = every

    @torch.no_grad()
    def write(self, trainer: L.Trainer, pl_module: StylizerSystem) -> None:
        if not trainer.is_global_zero or not pl_module.val_images:
            return
        g = pl_module.g_ema.eval()
        rows = []
        for image in pl_module.val_images:
            content = image.to(pl_module.device)
            if g.conditioned:
                rows.append(
                    [image]
                    + [caption(g(content, s).float().cpu(), f"s={s:g}") for s in self.STRENGTHS]
                )
            else:
                rows.append([image, g(content).float().cpu()])
        grid = make_grid(rows, same_width=True)
        step = pl_module.g_step
        save_image(grid, self.out_dir / f"step_{step:06d}.png")
        logger = trainer.logger
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image("val/samples", grid[0], global_step=step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.g_step % self.every == 0:
            self.write(trainer, pl_module)

    def on_train_start(self, trainer, pl_module) -> None:
        if pl_module.g_step == 0:
            self.write(trainer, pl_module)


# metrics.json says what each of its numbers is: its two "style" numbers differ on purpose.
METRICS_ABOUT = {
    "g_step": "generator steps trained in all",
    "seconds_per_step": "wall time per generator step in this session (one session of a run)",
    "nonfinite_skipped": "optimizer steps skipped for a NaN or infinite loss or gradient",
    "alpha, beta": "the style and content weights this generator was trained for (a strength "
    "dial: the alpha of its default strength), the calibration's factor included",
    "style_scale": "the factor on the style term calibrated from the painting (loss.calibrate)",
    "val": "G_ema on the run's fixed validation photos under the run's own loss (its VGG, its "
    "layers, its painting size, alpha and beta): how far training got on its own objective",
    "reference_eval": "the same photos under the fixed ruler of scripts/evaluate.py (caffe "
    "VGG19, alpha=50, beta=1, the painting at the photos' size) with SWD, SSIM and edges: the "
    "numbers to compare runs by; its style loss differs from val's because the ruler differs",
}


class RunSummary(Callback):
    """metrics.json at the end of training (rank 0): steps, seconds per step, and the seed's
    losses of G_ema on the fixed validation photos, so runs (and sweep points) can be ranked."""

    def __init__(self, out_dir: Path, interrupt: GracefulInterrupt | None = None) -> None:
        self.out_dir = out_dir
        self.interrupt = interrupt  # an interrupted run is summed up when it completes
        self._start = (0.0, 0)

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = (time.perf_counter(), pl_module.g_step)

    @torch.no_grad()
    def on_train_end(self, trainer, pl_module: StylizerSystem) -> None:
        interrupted = self.interrupt is not None and self.interrupt.stopped_at is not None
        if not trainer.is_global_zero or interrupted:
            return
        seconds = time.perf_counter() - self._start[0]
        steps = pl_module.g_step - self._start[1]
        loss = pl_module.cfg.loss
        alpha = trained_alpha(pl_module.cfg) * pl_module.style_scale
        per_image = []
        for image in pl_module.val_images:
            image = image.to(pl_module.device)
            stylized = pl_module.g_ema.eval()(image)
            target = pl_module.criterion.content_features(image)
            l_style, l_content = pl_module.criterion(stylized, target)
            per_image.append(
                {
                    "style": l_style.item(),
                    "content": l_content.item(),
                    "total": alpha * l_style.item() + loss.beta * l_content.item(),
                }
            )
        mean = (
            {k: sum(m[k] for m in per_image) / len(per_image) for k in per_image[0]}
            if per_image
            else {}
        )
        metrics = {
            "about": METRICS_ABOUT,
            "g_step": pl_module.g_step,
            "steps_this_session": steps,
            "seconds_this_session": round(seconds, 1),
            "seconds_per_step": round(seconds / steps, 4) if steps else None,
            "nonfinite_skipped": pl_module.nonfinite_total,
            "alpha": alpha,
            "style_scale": pl_module.style_scale,
            "beta": loss.beta,
            "val": {"mean": mean, "per_image": per_image},
        }
        try:
            metrics["reference_eval"] = evaluate_for_card(pl_module)
        except (RuntimeError, ValueError) as err:  # the checkpoint is saved: never fail here
            log.warning("model card: the reference evaluation failed: %s", err)
            metrics["reference_eval"] = {"error": " ".join(str(err).split())[:300]}
        atomic.write_text(self.out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        write_model_card(self.out_dir, pl_module.cfg, metrics)


class StepProgress(ProgressBar):
    """The generator steps of the budget (trainer.steps), their rate and an ETA; a resumed run
    starts where it stopped. On a terminal, a bar: `train: 12%|█ | 120/1000 [06:01<44:10,
    3.01s/step, g_style=…]`, with the lines logged meanwhile printed above it (tqdm's logging
    redirect). Piped or into a file, no bar (its carriage returns would glue every line
    together): one line of progress_line() every `every` steps and at the last."""

    def __init__(self, steps: int, every: int) -> None:
        super().__init__()
        self.steps = steps
        self.every = every
        self._enabled = True
        self._bar = None
        self._redirect = None
        self._start = (0.0, 0)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        self._start = (time.perf_counter(), pl_module.g_step)
        if sys.stderr.isatty():
            self._bar = tqdm(
                total=self.steps, initial=pl_module.g_step, desc="train", unit="step",
                dynamic_ncols=True, file=sys.stderr,
            )  # fmt: skip
            self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger()])
            self._redirect.__enter__()

    def seconds_per_step(self, step: int) -> float | None:
        began, first = self._start
        return (time.perf_counter() - began) / (step - first) if step > first else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        step = pl_module.g_step
        metrics = trainer.callback_metrics
        shown = {
            key.removeprefix("train/"): f"{float(metrics[key]):.3g}"
            for key in ("train/g_style", "train/g_content", "train/d_loss")
            if key in metrics
        }
        if self._bar is not None:
            self._bar.n = step
            self._bar.set_postfix(shown, refresh=False)
            self._bar.refresh()
        elif step % self.every == 0 or step == self.steps:
            print(
                progress_line("train", step, self.steps, self.seconds_per_step(step), shown),
                flush=True,
            )

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._close()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._close()  # an exception ended the run


class LossLog(Callback):
    """The losses every `every` generator steps into the run's log file (train.log, Hydra's
    file handler), not onto the console, where the progress bar shows them: a record of the
    run that stays with it."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.logger = logging.getLogger("gan_stylizer.training.losses")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)

    def on_train_start(self, trainer, pl_module) -> None:
        files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
        self.logger.handlers[:] = files

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.g_step
        if step % self.every or not self.logger.handlers or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [
            f"{key.removeprefix('train/')} {float(metrics[key]):.4g}"
            for key in ("train/g_style", "train/g_content", "train/g_adv", "train/d_loss")
            if key in metrics
        ]
        self.logger.info("step %d/%d: %s", step, pl_module.cfg.trainer.steps, ", ".join(parts))
