"""run(cfg, out_dir): build data, system and trainer; fit. No Hydra here: the root train.py
composes the config and passes the run directory in, so tests call run() directly."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from gan_stylizer.config.schema import TrainConfig
from gan_stylizer.config.validate import (
    validate_train,
)
from gan_stylizer.devices import resolve_train_precision
from gan_stylizer.io.atomic import sweep
from gan_stylizer.perceptual import build_criterion
from gan_stylizer.styles import data_dir_of, load_style_image
from gan_stylizer.system import StylizerSystem
from gan_stylizer.training.calibration import not_applicable, style_scale
from gan_stylizer.training.callbacks import (
    GracefulInterrupt,
    LossLog,
    PeriodicCheckpoint,
    RunSummary,
    SampleGrid,
    StepProgress,
    TrainingInterrupted,
)
from gan_stylizer.training.cluster import (
    RequeueAtBatchEnd,
    choose_strategy,
    slurm_environment,
    submitit_signal,
)
from gan_stylizer.training.data import PhotoDataModule
from gan_stylizer.training.records import write_run_info
from gan_stylizer.training.resume import choose_resume

log = logging.getLogger(__name__)


def build_trainer(cfg: TrainConfig, out_dir: Path) -> L.Trainer:
    t = cfg.trainer
    ckpt_dir = out_dir / "checkpoints"
    periodic = PeriodicCheckpoint(ckpt_dir, t.ckpt_every, t.keep_every)
    interrupt = GracefulInterrupt(periodic)
    callbacks = [
        periodic,
        interrupt,
        SampleGrid(out_dir / "samples", t.image_every),
        RunSummary(out_dir, interrupt),
        StepProgress(t.steps, t.log_every),
        LossLog(t.log_every),
    ]
    # Last in the list: a batch's own checkpoint is written before a requeue handler runs.
    environment = slurm_environment()
    if environment is not None and environment.auto_requeue:
        # Lightning's handler saves checkpoints/hpc_ckpt_N.ckpt itself.
        callbacks.append(RequeueAtBatchEnd(environment.requeue_signal))
    elif (signum := submitit_signal()) is not None:
        callbacks.append(RequeueAtBatchEnd(signum, save_first=periodic))
    return L.Trainer(
        # Lightning writes its SLURM hpc_ckpt_N.ckpt here, next to our own checkpoints.
        default_root_dir=ckpt_dir,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=choose_strategy(t),
        plugins=[environment] if environment is not None else None,
        precision=t.precision,
        max_epochs=-1,
        max_steps=-1,  # the budget is trainer.steps generator steps, enforced by the system
        logger=TensorBoardLogger(
            save_dir=str(out_dir), name="tb", version="", default_hp_metric=False
        ),
        log_every_n_steps=t.log_every,
        enable_checkpointing=False,
        use_distributed_sampler=False,  # PhotoStream gives each rank its own samples
        callbacks=callbacks,
        enable_model_summary=False,
    )


class _DropAdverts(logging.Filter):
    """Lightning's '💡 Tip: ... litlogger' advert, logged on every run: not ours to show."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_lightning() -> None:
    """Each of Lightning's log lines once: its own console handler goes (the line still
    reaches the console and train.log through the root logger that Hydra sets up); its
    advert goes; a deprecation inside Lightning itself (torch's LeafSpec, on every run) is
    silenced by its message, not warnings wholesale."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        if logging.getLogger().handlers:  # under Hydra (the commands): root prints it
            logger.handlers.clear()
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in rank_zero.filters):  # once per process
        rank_zero.addFilter(_DropAdverts())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def run(cfg: TrainConfig, out_dir: Path) -> Path:
    """Train a stylizer; everything is written below out_dir. Returns the last checkpoint."""
    validate_train(cfg)
    cfg.trainer.precision = resolve_train_precision(cfg.trainer)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    resume, saved = choose_resume(cfg, out_dir)
    start_step = int(saved["gan_stylizer"]["g_step"]) if saved else 0
    if resume is not None and start_step >= cfg.trainer.steps:
        log.warning(
            "%s is at generator step %d of trainer.steps=%d: nothing to train (raise "
            "trainer.steps to go on)",
            resume,
            start_step,
            cfg.trainer.steps,
        )
        return resume
    # A resumed run keeps the style factor it started with (1 for a checkpoint from before the
    # calibration): its objective must not change between sessions.
    hyper = (saved.get("hyper_parameters") or {}) if saved else {}
    resumed_scale = float(hyper.get("style_scale", 1.0)) if saved else None
    del saved  # the weights are loaded again by Lightning, on the right device
    if cfg.trainer.threads > 0:
        torch.set_num_threads(cfg.trainer.threads)
    data_dir = data_dir_of(cfg.data_dir)
    # VGG and G_ema are in eval mode on purpose (frozen network, inference copy).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    quiet_lightning()
    datamodule = PhotoDataModule(cfg.data, data_dir, seed=cfg.seed, start_batch=start_step)
    trainer = build_trainer(cfg, out_dir)
    # The same seed on every rank: identical initial weights. The data and D's painting crops
    # are drawn per rank and step from streams derived from the seed (gan_stylizer.seeding).
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    style_image = load_style_image(cfg.style, data_dir, local_rank=trainer.local_rank)
    criterion = build_criterion(cfg.loss)
    if resumed_scale is None:
        if trainer.is_global_zero and not_applicable(cfg) is None:
            log.info("calibrating the style weight on the sample photos (a minute or two)")
        scale, scale_line = style_scale(cfg, criterion, style_image)
    else:
        scale, scale_line = resumed_scale, f"style term scaled by {resumed_scale:.3g}, as it began"
    if trainer.is_global_zero:
        log.info(scale_line)
    system = StylizerSystem(cfg, criterion, style_image, datamodule.val_images(), scale)

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if trainer.is_global_zero:
        for line in sweep(ckpt_dir):  # a checkpoint write cut short by a kill
            log.info(line)
        write_run_info(out_dir, cfg, resume, start_step)
    if resume is not None:
        log.info("resuming from %s at generator step %d", resume, start_step)
    if trainer.is_global_zero:
        h, w = style_image.shape[-2:]
        log.info(
            "run %s: %s on %s, %s, %d generator steps (%d done); painting %s at %dx%d; %d "
            "training photos",
            cfg.name,
            out_dir,
            trainer.strategy.root_device,
            cfg.trainer.precision,
            cfg.trainer.steps,
            start_step,
            cfg.style.path or cfg.style.name,
            w,
            h,
            len(datamodule.train_files),
        )
    # weights_only: a resumed checkpoint is plain data, and anything else is refused unrun.
    trainer.fit(
        system, datamodule=datamodule, ckpt_path=str(resume) if resume else None, weights_only=True
    )
    interrupt = next(c for c in trainer.callbacks if isinstance(c, GracefulInterrupt))
    if interrupt.stopped_at is not None:
        raise TrainingInterrupted(
            f"interrupted at generator step {interrupt.stopped_at} of {cfg.trainer.steps}; "
            f"saved {ckpt_dir / 'last.ckpt'}; run the same command again to resume"
        )
    return ckpt_dir / "last.ckpt"
