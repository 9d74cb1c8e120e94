"""run(cfg, out_dir): build data, system and trainer; fit. No Hydra here: the root train.py
composes the config and passes the run directory in, so tests call run() directly."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from gan_stylizer.config import ConfigError, TrainConfig, to_plain, validate_train
from gan_stylizer.data import PhotoDataModule
from gan_stylizer.images import load_image, make_grid, resize_long_side, save_image
from gan_stylizer.models.vgg import build_vgg
from gan_stylizer.perceptual import PerceptualCriterion
from gan_stylizer.styles import resolve_style
from gan_stylizer.system import StylizerSystem

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """<repo>/data for a source checkout (the usual install), else ~/.cache/gan-stylizer."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    return Path.home() / ".cache" / "gan-stylizer"


def data_dir_of(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else default_data_dir()


def load_style_image(style_cfg, data_dir: Path) -> torch.Tensor:
    """The painting named by the style config, RGB [0,1] [1,3,H,W] at style.size long side."""
    path = resolve_style(style_cfg.name, style_cfg.path, data_dir / "styles")
    return load_image(path, size=style_cfg.size)


class PeriodicCheckpoint(Callback):
    """Writes checkpoints/step_NNNNNN.ckpt every `every` generator steps, and last.ckpt at each
    of them and at the end. Every write goes to a temporary file first and is renamed into
    place, so a crash mid-write never replaces the previous good checkpoint."""

    def __init__(self, dirpath: Path, every: int) -> None:
        self.dirpath = dirpath
        self.every = every
        self._saved_at = -1

    def _save(self, trainer: L.Trainer, step: int, keep_step_file: bool) -> None:
        if step == self._saved_at:
            return
        self._saved_at = step
        tmp = self.dirpath / f".last.ckpt.tmp{os.getpid()}"
        # Collective: every rank calls it, rank 0 writes. Full state (optimizers too), for resume.
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            if keep_step_file:
                shutil.copyfile(tmp, self.dirpath / f".step.tmp{os.getpid()}")
                os.replace(
                    self.dirpath / f".step.tmp{os.getpid()}", self.dirpath / f"step_{step:06d}.ckpt"
                )
            os.replace(tmp, self.dirpath / "last.ckpt")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.g_step
        if step % self.every == 0:
            self._save(trainer, step, keep_step_file=True)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module.g_step, keep_step_file=False)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Ctrl-C: keep what was learned since the last checkpoint. Single process only: saving
        # is collective, and under DDP the other ranks are being torn down.
        if isinstance(exception, KeyboardInterrupt) and trainer.world_size == 1:
            self._save(trainer, pl_module.g_step, keep_step_file=False)
            log.warning("interrupted: saved %s", self.dirpath / "last.ckpt")


class SampleGrid(Callback):
    """Every `every` generator steps: the fixed validation photos through G_ema, written as a
    PNG (content | stylized per row) under samples/ and to TensorBoard. Rank 0 only."""

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
            stylized = g(image.to(pl_module.device)).float().cpu()
            rows.append([image, stylized])
        grid = make_grid(rows)
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


class RunSummary(Callback):
    """metrics.json at the end of training (rank 0): steps, seconds per step, and the seed's
    losses of G_ema on the fixed validation photos, so runs (and sweep points) can be ranked."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._start = (0.0, 0)

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = (time.perf_counter(), pl_module.g_step)

    @torch.no_grad()
    def on_train_end(self, trainer, pl_module: StylizerSystem) -> None:
        if not trainer.is_global_zero:
            return
        seconds = time.perf_counter() - self._start[0]
        steps = pl_module.g_step - self._start[1]
        loss = pl_module.cfg.loss
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
                    "total": loss.alpha * l_style.item() + loss.beta * l_content.item(),
                }
            )
        mean = (
            {k: sum(m[k] for m in per_image) / len(per_image) for k in per_image[0]}
            if per_image
            else {}
        )
        metrics = {
            "g_step": pl_module.g_step,
            "steps_this_session": steps,
            "seconds_this_session": round(seconds, 1),
            "seconds_per_step": round(seconds / steps, 4) if steps else None,
            "nonfinite_skipped": pl_module.nonfinite_total,
            "alpha": loss.alpha,
            "beta": loss.beta,
            "val": {"mean": mean, "per_image": per_image},
        }
        reference = evaluate_for_card(pl_module)
        metrics["reference_eval"] = reference
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_model_card(self.out_dir, pl_module.cfg, metrics)


@torch.no_grad()
def evaluate_for_card(pl_module: StylizerSystem) -> dict:
    """G_ema on the validation photos under the evaluation's fixed reference (caffe VGG19,
    alpha=50, painting at the photos' size): the numbers scripts/evaluate.py would give."""
    from gan_stylizer.evaluate import Evaluator, Photo, evaluate_one_pass, mean_metrics, one_pass

    if not pl_module.val_images:
        return {}
    size = max(pl_module.val_images[0].shape[-2:])
    style = resize_long_side(pl_module.style_image.detach().float().cpu(), size)
    evaluator = Evaluator(style, alpha=50.0, beta=1.0, device=pl_module.device)
    photos = [Photo(f"val_{i}", image) for i, image in enumerate(pl_module.val_images)]
    g = pl_module.g_ema.eval()
    rows, _ = evaluate_one_pass(photos, one_pass(g, pl_module.device), evaluator, progress=log.info)
    return {"alpha": 50.0, "beta": 1.0, "size": int(size), "mean": mean_metrics(rows)}


def write_model_card(out_dir: Path, cfg: TrainConfig, metrics: dict) -> None:
    """checkpoints/model_card.md: what was trained, on what, for how long, how good."""
    loss, data, t = cfg.loss, cfg.data, cfg.trainer
    samples = sorted((out_dir / "samples").glob("step_*.png"))
    ref = metrics.get("reference_eval") or {}
    mean = ref.get("mean") or {}

    def num(key: str, fmt: str) -> str:
        value = mean.get(key)
        return format(value, fmt) if isinstance(value, int | float) else "–"

    seconds = metrics.get("seconds_this_session") or 0.0
    lines = [
        f"# Model card: {cfg.name}",
        "",
        f"- **Style**: {cfg.style.name}"
        + (f" ({cfg.style.path})" if cfg.style.path else "")
        + f", painting at {cfg.style.size} px long side",
        f"- **Loss**: alpha={loss.alpha:g} (style), beta={loss.beta:g} (content), tv={loss.tv:g}, "
        f"adv={loss.adv:g} ({loss.adv_type}, relative), r1={loss.r1:g}; VGG19 {loss.vgg.weights}, "
        f"style layers {', '.join(loss.style_layers)}, content {loss.content_layer}",
        f"- **Generator**: {cfg.model.generator.channels} channels, "
        f"{cfg.model.generator.n_residual} residual blocks, {cfg.model.generator.norm} norm",
        f"- **Data**: {data.source}"
        + (f" {data.root}" if data.root else "")
        + f", {data.image_size}-px crops of photos at {data.resize_long_side[0]}–"
        f"{data.resize_long_side[1]} px, batch {data.batch_size}",
        f"- **Training**: {metrics.get('g_step')} generator steps ({t.warmup_steps} content-only), "
        f"lr_g={t.lr_g:g}, lr_d={t.lr_d:g}, EMA {t.ema_decay:g}, precision {t.precision}; "
        f"this session {seconds / 60:.1f} min, {metrics.get('seconds_per_step')} s/step; "
        f"skipped non-finite steps: {metrics.get('nonfinite_skipped')}",
        "",
        f"## Evaluation on the {len(metrics.get('val', {}).get('per_image', []))} validation "
        "photos",
        "",
        "Fixed reference (as `scripts/evaluate.py`): caffe VGG19, photos at "
        f"{ref.get('size', '–')} px, alpha={ref.get('alpha', '–')}, "
        f"beta={ref.get('beta', '–')}. Lower is better for the losses and the SWD, higher "
        "for SSIM and edges.",
        "",
        "| L_style | L_content | total | SWD | SSIM | edges | s/image |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {num('style', '.3g')} | {num('content', '.3g')} | {num('total', '.3g')} | "
        f"{num('swd', '.1f')} | {num('ssim', '.3f')} | {num('edges', '.3f')} | "
        f"{num('seconds', '.2f')} |",
        "",
    ]
    if samples:
        link = Path("..") / samples[-1].relative_to(out_dir)
        lines += ["## Samples", "", f"![validation photos: photo | stylized]({link})", ""]
    lines += [
        f"Use it: `python stylize.py ckpt={out_dir / 'checkpoints' / 'last.ckpt'} input=photo.jpg`",
        "",
    ]
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out_dir / "checkpoints" / "model_card.md").write_text("\n".join(lines))


def write_run_info(out_dir: Path, cfg: TrainConfig) -> None:
    """run_info.json: library versions, git commit, command line: what reproduces the run."""
    import lightning
    import torchvision

    repo = Path(__file__).resolve().parents[2]
    commit = dirty = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain"],
                check=True,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        pass
    info = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "host": platform.node(),
        "python": platform.python_version(),
        "versions": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "lightning": lightning.__version__,
        },
        "git_commit": commit,
        "git_dirty": dirty,
        "config": to_plain(cfg),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")


def resolve_ckpt_path(ckpt_path: str | None, out_dir: Path) -> Path | None:
    """null -> fresh run; 'last' -> this run's last.ckpt, else the newest last.ckpt of a
    sibling run (same parent folder); a run directory -> its last.ckpt; a file -> itself."""
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        own = out_dir / "checkpoints" / "last.ckpt"
        if own.is_file():
            return own
        siblings = sorted(
            out_dir.parent.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not siblings:
            raise ConfigError(
                f"ckpt_path=last: no checkpoints/last.ckpt in {out_dir} or its sibling runs"
            )
        return siblings[-1]
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: {path} does not exist")
    return path


def check_resumable(path: Path, cfg: TrainConfig) -> None:
    """Refuse to resume a checkpoint of another model or painting: Lightning would fail on the
    weights (a traceback) or, worse, silently go on training with a different style."""
    from gan_stylizer.checkpoint import load_checkpoint

    try:
        saved = load_checkpoint(path)["hyper_parameters"]["config"]
    except (KeyError, TypeError):
        raise ConfigError(f"ckpt_path: {path} is not a gan-stylizer training checkpoint") from None
    now = to_plain(cfg)
    for key in ("model", "style"):
        if saved.get(key) != now[key]:
            raise ConfigError(
                f"ckpt_path: {path} was trained with {key}={saved.get(key)}, this run asks for "
                f"{key}={now[key]}; resume with the same {key} settings or start a new run"
            )


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


def build_criterion(loss_cfg) -> PerceptualCriterion:
    layers = [*loss_cfg.style_layers, loss_cfg.content_layer]
    vgg = build_vgg(layers, weights=loss_cfg.vgg.weights, pooling=loss_cfg.vgg.pooling)
    return PerceptualCriterion(vgg, dict(loss_cfg.style_layers), loss_cfg.content_layer)


def run(cfg: TrainConfig, out_dir: Path) -> Path:
    """Train a stylizer; everything is written below out_dir. Returns the last checkpoint."""
    validate_train(cfg)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    resume = resolve_ckpt_path(cfg.ckpt_path, out_dir)
    if resume is None and (ckpt_dir / "last.ckpt").exists():
        # A fresh run here would overwrite the checkpoints of the one before it.
        raise ConfigError(
            f"{out_dir} already holds a run ({ckpt_dir / 'last.ckpt'}); resume it with "
            "ckpt_path=last, or choose another hydra.run.dir"
        )
    if resume is not None:
        check_resumable(resume, cfg)
    if cfg.trainer.threads > 0:
        torch.set_num_threads(cfg.trainer.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data_dir = data_dir_of(cfg.data_dir)

    datamodule = PhotoDataModule(cfg.data, data_dir)
    style_image = load_style_image(cfg.style, data_dir)
    criterion = build_criterion(cfg.loss)
    system = StylizerSystem(cfg, criterion, style_image, datamodule.val_images())

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    # VGG and G_ema are in eval mode on purpose (frozen network, inference copy).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    t = cfg.trainer
    trainer = L.Trainer(
        default_root_dir=out_dir,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=choose_strategy(t),
        precision=t.precision,
        max_epochs=-1,
        max_steps=-1,  # the budget is trainer.steps generator steps, enforced by the system
        logger=TensorBoardLogger(
            save_dir=str(out_dir), name="tb", version="", default_hp_metric=False
        ),
        log_every_n_steps=t.log_every,
        enable_checkpointing=False,
        callbacks=[
            PeriodicCheckpoint(ckpt_dir, t.ckpt_every),
            SampleGrid(out_dir / "samples", t.image_every),
            RunSummary(out_dir),
        ],
        enable_model_summary=False,
    )
    if trainer.is_global_zero:
        write_run_info(out_dir, cfg)
    if resume is not None:
        log.info("resuming from %s", resume)
    # weights_only: a resumed checkpoint is plain data, and anything else is refused unrun.
    trainer.fit(
        system, datamodule=datamodule, ckpt_path=str(resume) if resume else None, weights_only=True
    )
    return ckpt_dir / "last.ckpt"
