"""What a run leaves about itself: run_info.json (versions, commit, command, config; one entry
per resumed session), metrics.json and the model card with the ruler's evaluation.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from gan_stylizer.config.schema import TrainConfig
from gan_stylizer.dial import DRAWS, strength_to_alpha
from gan_stylizer.evaluation.ruler import Evaluator, mean_metrics
from gan_stylizer.evaluation.runners import Photo, evaluate_one_pass, one_pass
from gan_stylizer.io import atomic
from gan_stylizer.io.images import resize_long_side
from gan_stylizer.models.generator import DEFAULT_STRENGTH
from gan_stylizer.plain import to_plain
from gan_stylizer.system import StylizerSystem

log = logging.getLogger(__name__)


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
    """model_card.md at the run's root: what was trained, on what, for how long, how good."""
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
        (
            f"- **Loss**: alpha={loss.alpha:g} (style), "
            if not cfg.model.generator.conditioned
            else f"- **Loss**: strength s in [0, 1] -> alpha={loss.alpha_min:g}·"
            f"({loss.alpha_max:g}/{loss.alpha_min:g})^s (style; default s={DEFAULT_STRENGTH}), "
        )
        + (
            f"the style term × {metrics['style_scale']:.3g} (calibrated from the painting), "
            if metrics.get("style_scale", 1.0) != 1.0
            else ""
        )
        + f"beta={loss.beta:g} (content), tv={loss.tv:g}, "
        f"adv={loss.adv:g} ({loss.adv_type}, relative), r1={loss.r1:g}; VGG19 {loss.vgg.weights}, "
        f"style layers {', '.join(loss.style_layers)}, content {loss.content_layer}",
        f"- **Generator**: {cfg.model.generator.channels} channels, "
        f"{cfg.model.generator.n_residual} residual blocks, {cfg.model.generator.norm} norm"
        + (
            ", conditioned on the style strength (each image's pull balanced by alpha, "
            f"adversarial share per image, {DRAWS})"
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
        "for SSIM and edges; the palette is the ΔE distance to the painting's colours.",
        "",
        "| L_style | L_content | total | SWD | palette | SSIM | edges | s/image |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {num('style', '.3g')} | {num('content', '.3g')} | {num('total', '.3g')} | "
        f"{num('swd', '.1f')} | {num('palette', '.1f')} | {num('ssim', '.3f')} | "
        f"{num('edges', '.3f')} | "
        f"{num('seconds', '.2f')} |",
        "",
    ]
    if samples:
        link = samples[-1].relative_to(out_dir)
        lines += ["## Samples", "", f"![validation photos: photo | stylized]({link})", ""]
    lines += [
        f"Use it: `python stylize.py ckpt={out_dir / 'checkpoints' / 'last.ckpt'} input=photo.jpg`",
        "",
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    # A path with non-UTF-8 bytes (data.root, style.path) must not stop the run at its end.
    card = "\n".join(lines)
    atomic.write_text(out_dir / "model_card.md", card, "backslashreplace")


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
    repo = Path(__file__).resolve().parents[3]  # src/gan_stylizer/training/ -> the checkout
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
    atomic.write_text(path, json.dumps(info, indent=2) + "\n")
