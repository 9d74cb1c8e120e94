"""run(cfg, out_dir): build data, system and trainer; fit. No Hydra here: the root train.py
composes the config and passes the run directory in, so tests call run() directly."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan_stylizer.checkpoint import CheckpointError, load_checkpoint
from gan_stylizer.config import (
    BEFORE_THE_OPTION,
    ConfigError,
    TrainConfig,
    applied_loss_setting,
    describe_strength_draws,
    resolve_adv_balance,
    resolve_perceptual_balance,
    to_plain,
    validate_train,
)
from gan_stylizer.data import PhotoDataModule
from gan_stylizer.images import caption, load_image, make_grid, resize_long_side, save_image
from gan_stylizer.models.generator import DEFAULT_STRENGTH
from gan_stylizer.models.vgg import build_vgg
from gan_stylizer.perceptual import PerceptualCriterion
from gan_stylizer.styles import REGISTRY, StyleError, resolve_style
from gan_stylizer.system import StylizerSystem, strength_to_alpha

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """<repo>/data for a source checkout (the usual install), else ~/.cache/gan-stylizer."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    return Path.home() / ".cache" / "gan-stylizer"


def data_dir_of(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else default_data_dir()


def load_style_image(style_cfg, data_dir: Path, local_rank: int = 0) -> torch.Tensor:
    """The painting named by the style config, RGB [0,1] [1,3,H,W] at style.size long side."""
    path = fetch_style(style_cfg, data_dir / "styles", local_rank)
    return load_image(path, size=style_cfg.size)


def fetch_style(
    style_cfg, cache_dir: Path, local_rank: int = 0, wait_s: float = 600.0, poll_s: float = 0.5
) -> Path:
    """The painting's local file. Only local rank 0 downloads a registry painting that is not
    cached yet; the other ranks of its node wait for the file (a download is renamed into place
    whole), so a node downloads it once, not once per rank."""
    spec = REGISTRY.get(style_cfg.name)
    if local_rank != 0 and style_cfg.path is None and spec is not None:
        target = Path(cache_dir) / spec.filename
        deadline = time.monotonic() + wait_s
        while not target.is_file():
            if time.monotonic() > deadline:
                raise StyleError(
                    f"style {style_cfg.name!r}: local rank {local_rank} waited {wait_s:g} s for "
                    f"local rank 0 to download {target}; see rank 0's error, or place the file "
                    "there by hand"
                )
            time.sleep(poll_s)
    return resolve_style(style_cfg.name, style_cfg.path, cache_dir, download=local_rank == 0)


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
        alpha = trained_alpha(pl_module.cfg)
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
            "g_step": pl_module.g_step,
            "steps_this_session": steps,
            "seconds_this_session": round(seconds, 1),
            "seconds_per_step": round(seconds / steps, 4) if steps else None,
            "nonfinite_skipped": pl_module.nonfinite_total,
            "alpha": alpha,
            "beta": loss.beta,
            "val": {"mean": mean, "per_image": per_image},
        }
        try:
            metrics["reference_eval"] = evaluate_for_card(pl_module)
        except (RuntimeError, ValueError) as err:  # the checkpoint is saved: never fail here
            log.warning("model card: the reference evaluation failed: %s", err)
            metrics["reference_eval"] = {"error": " ".join(str(err).split())[:300]}
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_model_card(self.out_dir, pl_module.cfg, metrics)


def trained_alpha(cfg: TrainConfig) -> float:
    """The style weight the generator's default output was trained for: loss.alpha, or for a
    conditioned generator the α of its default strength."""
    if not cfg.model.generator.conditioned:
        return cfg.loss.alpha
    return float(strength_to_alpha(DEFAULT_STRENGTH, cfg.loss.alpha_min, cfg.loss.alpha_max))


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
    # SSIM's window is 11 px: a sliver of a photo (say 3x1000) cannot be measured.
    photos = [
        Photo(f"val_{i}", image)
        for i, image in enumerate(pl_module.val_images)
        if min(image.shape[-2:]) >= 11
    ]
    if not photos:
        return {}
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
    draws = (loss.strength_sampling, loss.strength_ends, loss.strength_margin)
    lines = [
        f"# Model card: {cfg.name}",
        "",
        f"- **Style**: {cfg.style.name}"
        + (f" ({cfg.style.path})" if cfg.style.path else "")
        + f", painting at {cfg.style.size} px long side",
        (
            f"- **Loss**: alpha={loss.alpha:g} (style), "
            if not cfg.model.generator.conditioned
            else f"- **Loss**: strength s in [0, 1] -> alpha={loss.alpha_min:g}·"
            f"({loss.alpha_max:g}/{loss.alpha_min:g})^s (style; default s={DEFAULT_STRENGTH}), "
        )
        + f"beta={loss.beta:g} (content), tv={loss.tv:g}, "
        f"adv={loss.adv:g} ({loss.adv_type}, relative), r1={loss.r1:g}; VGG19 {loss.vgg.weights}, "
        f"style layers {', '.join(loss.style_layers)}, content {loss.content_layer}",
        f"- **Generator**: {cfg.model.generator.channels} channels, "
        f"{cfg.model.generator.n_residual} residual blocks, {cfg.model.generator.norm} norm"
        + (
            ", conditioned on the style strength (each image's pull balanced by "
            f"{resolve_perceptual_balance(loss.perceptual_balance, True)}, adversarial share per "
            f"{resolve_adv_balance(loss.adv_balance, True)}, strength path at "
            f"{t.lr_strength_mult:g}× lr_g, "
            f"{describe_strength_draws(*draws)})"
            if cfg.model.generator.conditioned
            else ""
        ),
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
    # A path with non-UTF-8 bytes (data.root, style.path) must not stop the run at its end.
    card = "\n".join(lines)
    (out_dir / "checkpoints" / "model_card.md").write_text(card, "utf-8", "backslashreplace")


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that decide a run's numbers (None: not installed)."""
    import lightning
    import torchvision

    # __version__ where it carries the build (torch 2.x+cu130), the installed metadata elsewhere
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
    }
    for name in ("hydra-core", "omegaconf", "numpy", "pillow", "submitit"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def session_info() -> dict:
    """This process: start time, command, host, library versions, git commit, SLURM job."""
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
        "versions": library_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
    }
    slurm = {
        key: os.environ[var]
        for key, var in (
            ("job_id", "SLURM_JOB_ID"),
            ("restart_count", "SLURM_RESTART_COUNT"),
            ("nodes", "SLURM_JOB_NODELIST"),
            ("ntasks", "SLURM_NTASKS"),
        )
        if var in os.environ
    }
    if slurm:
        info["slurm"] = slurm
    return info


def write_run_info(
    out_dir: Path, cfg: TrainConfig, resumed_from: Path | None = None, at_step: int = 0
) -> None:
    """run_info.json: library versions, git commit, command line, config: what reproduces the
    run. A session that resumes keeps the record of the first and appends its own to
    "resumed" (a requeued SLURM job adds one entry per restart)."""
    path = out_dir / "run_info.json"
    session = session_info()
    info = None
    if resumed_from is not None and path.is_file():
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            info = None
    if info is None:
        info = {**session, "config": to_plain(cfg)}
    if resumed_from is not None:
        resume = {"from": str(resumed_from), "at_step": at_step}
        info.setdefault("resumed", []).append({**session, **resume})
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)


# What may change between the sessions of one run under ckpt_path=auto: the budget, the
# hardware, where the files are, how often to log. Anything else (loss, data, model, seed,
# optimizer) means the command describes another run.
SESSION_KEYS = (
    "name",
    "ckpt_path",
    "data_dir",
    "data.root",
    "data.val_root",
    "data.num_workers",
    "trainer.steps",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.threads",
    "trainer.ckpt_every",
    "trainer.keep_every",
    "trainer.image_every",
    "trainer.log_every",
    "trainer.max_nonfinite",
)


def run_checkpoints(ckpt_dir: Path) -> list[Path]:
    """A run directory's resumable checkpoints: last.ckpt, and the hpc_ckpt_N.ckpt that
    Lightning's SLURM requeue writes (trainer.default_root_dir is the checkpoints folder)."""
    found = [ckpt_dir / "last.ckpt", *sorted(ckpt_dir.glob("hpc_ckpt_*.ckpt"))]
    return [p for p in found if p.is_file()]


def newest_checkpoint(ckpt_dir: Path) -> tuple[Path, dict] | None:
    """(path, contents) of the run's checkpoint with the most generator steps. An unreadable
    one (an hpc checkpoint whose write was killed) is skipped with a warning."""
    best: tuple[Path, dict, int] | None = None
    problems = []
    for path in run_checkpoints(ckpt_dir):
        try:
            ckpt = load_checkpoint(path)
            step = int(ckpt["gan_stylizer"]["g_step"])
        except (CheckpointError, KeyError, TypeError, ValueError) as err:
            problems.append(f"{path.name}: {err}")
            log.warning("cannot resume from %s: %s", path, err)
            continue
        if best is None or step > best[2]:
            best = (path, ckpt, step)
    if best is None and problems:
        raise ConfigError(
            f"{ckpt_dir} holds checkpoints but none can be resumed ({'; '.join(problems)}); "
            "move them away to start afresh, or name one with ckpt_path="
        )
    return (best[0], best[1]) if best else None


def choose_resume(cfg: TrainConfig, out_dir: Path) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume and its contents, (None, None) for a fresh run.

    auto: this run directory's newest checkpoint (last.ckpt or a SLURM hpc_ckpt_N.ckpt) if any,
    so that rerunning a command (or a requeued job) continues its run; it must describe the same
    run (see SESSION_KEYS). null: fresh, refused where a run exists. last: this run's newest,
    else the newest last.ckpt of a sibling run (same parent folder). A run directory: its
    last.ckpt. A file: itself. The last three may change the loss or data, not model or style.
    """
    ckpt_dir = out_dir / "checkpoints"
    mode = cfg.ckpt_path
    if not mode:
        if run_checkpoints(ckpt_dir):
            raise ConfigError(
                f"{out_dir} already holds a run ({ckpt_dir}); resume it with ckpt_path=auto, "
                "or choose another hydra.run.dir"
            )
        return None, None
    if mode == "auto":
        own = newest_checkpoint(ckpt_dir)
        if own is not None:
            check_same_run(own[0], own[1], cfg)
            return own
        return None, None
    if mode == "last":
        own = newest_checkpoint(ckpt_dir)
        if own is not None:
            check_resumable(own[0], own[1], cfg)
            return own
        siblings = sorted(
            out_dir.parent.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not siblings:
            raise ConfigError(
                f"ckpt_path=last: no checkpoints/last.ckpt in {out_dir} or its sibling runs"
            )
        path = siblings[-1]
    else:
        path = Path(mode).expanduser()
        if path.is_dir():
            path = path / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise ConfigError(f"ckpt_path={mode}: {path} does not exist")
    ckpt = load_checkpoint(path)
    check_resumable(path, ckpt, cfg)
    return path, ckpt


def saved_config(path: Path, ckpt: dict) -> dict:
    """The config a gan-stylizer training checkpoint was trained with."""
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or "g_step" not in (ckpt.get("gan_stylizer") or {}):
        raise ConfigError(f"ckpt_path: {path} is not a gan-stylizer training checkpoint")
    return config


def check_resumable(path: Path, ckpt: dict, cfg: TrainConfig) -> None:
    """Refuse to resume a checkpoint of another model or painting: Lightning would fail on the
    weights (a traceback) or, worse, silently go on training with a different style."""
    # A key the checkpoint predates (say model.generator.conditioned) had its default then.
    saved = _flat(to_plain(TrainConfig())) | _flat(saved_config(path, ckpt))
    now = _flat(to_plain(cfg))
    for key in ("model", "style"):
        changed = [k for k in now if k.startswith(f"{key}.") and saved.get(k) != now[k]]
        if changed:
            first = changed[0]
            raise ConfigError(
                f"ckpt_path: {path} was trained with {first}={saved.get(first)}, this run asks "
                f"for {first}={now[first]}; resume with the same {key} settings or start a new run"
            )


def _flat(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "loss.style_layers":
            flat |= _flat(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def check_same_run(path: Path, ckpt: dict, cfg: TrainConfig) -> None:
    """ckpt_path=auto resumes a run directory only with the settings it was started with (up to
    SESSION_KEYS): another loss or seed in the same directory is another run, not a restart."""
    saved, now = _flat(saved_config(path, ckpt)), _flat(to_plain(cfg))
    # A loss option the run predates: it was trained as before the option, and continues so
    # only where this command asks for the same (auto resolved).
    conditioned = bool(saved.get("model.generator.conditioned", False))
    for name, before in BEFORE_THE_OPTION.items():
        key = f"loss.{name}"
        if key not in saved and key in now:
            same = applied_loss_setting(name, before, conditioned) == applied_loss_setting(
                name, now[key], conditioned
            )
            saved[key] = now[key] if same else before
    changed = sorted(
        k for k in saved.keys() & now.keys() if k not in SESSION_KEYS and saved[k] != now[k]
    )
    if changed:
        first = changed[0]
        more = f" (and {len(changed) - 1} more: {', '.join(changed[1:])})" if changed[1:] else ""
        raise ConfigError(
            f"ckpt_path=auto: {path.parent.parent} holds a run with {first}={saved[first]}, this "
            f"command asks for {first}={now[first]}{more}; use another hydra.run.dir for a new "
            f"run, or continue this one with new settings: ckpt_path={path}"
        )


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


def resolve_train_precision(t) -> str:
    """trainer.precision=auto -> bf16-mixed where bf16 is native, else 32.

    On a CPU without AVX512-BF16 or AMX, PyTorch emulates bf16 and a training step under
    bf16 autocast is many times slower than in fp32 (measured on an AVX2-only AMD EPYC:
    fp32 2.7 s/step, bf16-mixed over 100 s/step); on GPUs without bf16, fp32 (16-mixed is
    refused, see validate_train).
    """
    if str(t.precision) != "auto":
        return str(t.precision)
    from gan_stylizer.inference import cpu_has_native_bf16

    accelerator = str(t.accelerator)
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    if accelerator in ("auto", "cpu"):
        return "bf16-mixed" if cpu_has_native_bf16() else "32"
    return "32"  # mps and others


def build_criterion(loss_cfg) -> PerceptualCriterion:
    layers = [*loss_cfg.style_layers, loss_cfg.content_layer]
    vgg = build_vgg(layers, weights=loss_cfg.vgg.weights, pooling=loss_cfg.vgg.pooling)
    return PerceptualCriterion(vgg, dict(loss_cfg.style_layers), loss_cfg.content_layer)


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
    del saved  # the weights are loaded again by Lightning, on the right device
    if cfg.trainer.threads > 0:
        torch.set_num_threads(cfg.trainer.threads)
    data_dir = data_dir_of(cfg.data_dir)
    # VGG and G_ema are in eval mode on purpose (frozen network, inference copy).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    datamodule = PhotoDataModule(cfg.data, data_dir, seed=cfg.seed, start_batch=start_step)
    trainer = build_trainer(cfg, out_dir)
    # The same seed on every rank: identical initial weights. The data and D's painting crops
    # are drawn per rank and step from streams derived from the seed (gan_stylizer.seeding).
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    style_image = load_style_image(cfg.style, data_dir, local_rank=trainer.local_rank)
    criterion = build_criterion(cfg.loss)
    system = StylizerSystem(cfg, criterion, style_image, datamodule.val_images())

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if trainer.is_global_zero:
        write_run_info(out_dir, cfg, resume, start_step)
    if resume is not None:
        log.info("resuming from %s at generator step %d", resume, start_step)
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
