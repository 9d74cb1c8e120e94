"""How stylize.py stylizes: one pass through a trained generator (a checkpoint, a zoo model or
an export; at one strength, several, or a strip of them) or the per-image optimization.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from gan_stylizer.color import preserve_color
from gan_stylizer.config.schema import EXPORTED_SUFFIXES, StylizeConfig
from gan_stylizer.errors import ConfigError
from gan_stylizer.inference.backends import build
from gan_stylizer.inference.exported import load_exported
from gan_stylizer.io.names import safe_component
from gan_stylizer.optimize import stylize_by_optimization
from gan_stylizer.perceptual import build_criterion
from gan_stylizer.progress import progress_line
from gan_stylizer.styles import data_dir_of, load_style_image
from gan_stylizer.zoo import load_any

OPTIMIZATION_SIZE = 512  # default long side for the (slow) optimization


GRID_GAP = 4  # white px between the strengths of a grid=true strip


@dataclass
class Method:
    """How inputs are stylized: apply([B, 3, H, W] in [0, 1]) -> float32 on the CPU."""

    apply: Callable[[torch.Tensor], torch.Tensor]
    label: str
    batch: bool  # apply takes batches (one pass) or one image at a time (optimization)
    recolor: bool  # preserve_color is applied to apply's output (one pass)
    description: str = ""
    # A conditioned generator: strength -> the apply function at that strength.
    at_strength: Callable[[float], Callable[[torch.Tensor], torch.Tensor]] | None = None


def _one_pass(cfg: StylizeConfig, device: torch.device) -> Method:
    if Path(cfg.ckpt).suffix.lower() in EXPORTED_SUFFIXES:
        apply, label = load_exported(cfg.ckpt, device)
        label = f"{label}-gan"
        at = functools.partial(_at_strength, apply) if apply.conditioned else None
        return Method(
            apply, label, True, cfg.preserve_color, f"exported model, fp32 on {device}", at
        )
    generator, label = load_any(cfg.ckpt)  # a checkpoint file, or a zoo name
    stylizer, description = build(
        generator, label, device, str(cfg.precision), cfg.tile, cfg.backend
    )
    at = functools.partial(_at_strength, stylizer) if generator.conditioned else None
    # The label names what made an output: <photo>_<model>-gan.png, <photo>_<painting>-optim.png.
    return Method(stylizer, f"{label}-gan", True, cfg.preserve_color, description, at)


def _at_strength(apply: Callable, strength: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return functools.partial(apply, strength=strength)


def _variants(
    method: Method, strengths: list[float] | None, grid: bool
) -> list[tuple[str, Method]]:
    """(file-name suffix, method) per output of each input: one, one per strength, or one strip
    of all strengths side by side (grid)."""
    if strengths is None:
        return [("", method)]
    if method.at_strength is None:
        raise ConfigError(
            "strength=: this generator has no strength input (train one with model=conditioned)"
        )
    if not grid:
        if len(strengths) == 1:
            return [("", replace(method, apply=method.at_strength(strengths[0])))]
        return [(f"_s{s:g}", replace(method, apply=method.at_strength(s))) for s in strengths]
    parts = [method.at_strength(s) for s in strengths]
    recolor = method.recolor

    def strip(content: torch.Tensor) -> torch.Tensor:
        outs = [part(content) for part in parts]
        if recolor:
            outs = [preserve_color(content, out) for out in outs]
        gap = torch.ones(*outs[0].shape[:-1], GRID_GAP)
        pieces = [piece for out in outs for piece in (out, gap)][:-1]
        return torch.cat(pieces, dim=-1)

    return [("", replace(method, apply=strip, recolor=False))]


def _optimization(cfg: StylizeConfig, device: torch.device) -> Method:

    style_image = load_style_image(cfg.style, data_dir_of(cfg.data_dir)).to(device)
    criterion = build_criterion(cfg.loss).to(device)

    def apply(content: torch.Tensor) -> torch.Tensor:
        result = stylize_by_optimization(
            content.to(device),
            style_image,
            criterion,
            preserve_colors=cfg.preserve_color,
            alpha=cfg.loss.alpha,
            beta=cfg.loss.beta,
            tv=cfg.loss.tv,
            steps=cfg.steps,
            optimizer=cfg.optimizer,
            lr=cfg.lr,
            init=cfg.init,
            tol=cfg.tol,
            seed=cfg.seed,
            progress=sys.stderr.isatty(),
            on_loss=None if sys.stderr.isatty() else _progress_lines(cfg.steps),
        )
        f = result.final
        tqdm.write(
            f"  {result.steps} steps, {result.seconds / result.steps:.2f} s/step, "
            f"style {f['style']:.4g}, content {f['content']:.4g}, total {f['total']:.4g}"
            + (f", {result.restarts} restarts after the loss blew up" if result.restarts else "")
        )
        return result.image.float().cpu()

    return Method(apply, optimization_label(cfg), False, False, f"optimization on {device}")


def optimization_label(cfg: StylizeConfig) -> str:
    """<photo>_<painting>-optim.png: the optimization's outputs name the painting."""
    return f"{safe_component(cfg.style.name)}-optim"


def _progress_lines(steps: int) -> Callable[[int, dict[str, float]], None]:
    """Not on a terminal: a line of the optimization's progress every tenth of its steps
    (at least 10) and at the last, in place of the bar."""
    every = max(10, steps // 10)

    def report(step: int, losses: dict[str, float]) -> None:
        if step % every == 0 or step == steps:
            rate = losses["seconds"] / step
            shown = {"loss": f"{losses['total']:.4g}"}
            tqdm.write(progress_line("  optimize", step, steps, rate, shown), file=sys.stdout)

    return report


def _recolor(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    return preserve_color(content, stylized)
