"""The seed's method (Gatys et al.): optimize the pixels of one image against the style and
content losses. Slow, one image at a time, and the quality baseline for the trained generator."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from gan_stylizer.color import luminance, preserve_color
from gan_stylizer.losses import total_loss, tv_loss
from gan_stylizer.perceptual import PerceptualCriterion


@dataclass
class OptimizeResult:
    image: torch.Tensor  # RGB [0,1] [1,3,H,W]
    steps: int
    seconds: float
    # One entry per loss evaluation (one per step for L-BFGS with max_iter=1 and for Adam):
    # style, content, tv, total of the image after len(history[:i]) updates, and "seconds",
    # the time from the start until that loss was known.
    history: list[dict[str, float]] = field(default_factory=list)
    # Times the loss blew up (non-finite, or BLOWUP times the best so far) and the optimization
    # went back to its best image with a fresh optimizer at half the step size.
    restarts: int = 0

    @property
    def final(self) -> dict[str, float]:
        """The losses of the returned image: the lowest total seen."""
        return min(self.history, key=lambda e: e["total"]) if self.history else {}


# A loss this many times the best one so far means the last update overshot. L-BFGS without a
# line search takes full quasi-Newton steps, which can overshoot (kept as a guard; the cause seen
# so far, a first step too small for fp32, is handled by FIRST_STEP).
BLOWUP = 4.0
MAX_RESTARTS = 8
# Mean pixel change (RGB in [0, 1]) of L-BFGS's first iteration, a plain gradient step.
FIRST_STEP = 1e-2


def _gray3(image: torch.Tensor) -> torch.Tensor:
    return luminance(image).expand(-1, 3, -1, -1)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Style luminance as grey RGB, shifted to the content luminance's mean and std (Gatys 2017)."""
    ys, yc = luminance(style), luminance(content)
    ys = (ys - ys.mean()) / (ys.std() + 1e-8) * yc.std() + yc.mean()
    return ys.clamp(0, 1).expand(-1, 3, -1, -1)


def optimize_image(
    content: torch.Tensor,
    criterion: PerceptualCriterion,
    *,
    alpha: float,
    beta: float,
    tv: float = 0.0,
    steps: int = 300,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    init: str = "content",
    tol: float = 1e-5,
    seed: int = 0,
    progress: bool = True,
    desc: str = "optimize",
    stop_below: float | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    on_loss: Callable[[int, dict[str, float]], None] | None = None,
    clamp: bool = False,
) -> OptimizeResult:
    """Optimize an image so that α·L_style + β·L_content (+ tv·L_tv) is minimal.

    content: RGB [0,1] [1,3,H,W]; the criterion must already hold the style (set_style).
    Stops after `steps` iterations or when the relative change of the loss over one step
    stays below `tol` for 5 steps in a row, or (stop_below) as soon as the total loss of the
    current image is at most stop_below. on_step(step, image) is called after every update, with
    the image clamped to [0, 1] (for snapshots); on_loss(step, losses) after every step with
    that step's entry of `history` (for progress lines). When the loss blows up (non-finite, or
    BLOWUP times the best so far) the optimization goes back to its best image with a fresh
    optimizer at half the step size, at most MAX_RESTARTS times. Returns the image with the
    lowest loss seen (its losses are `final`), RGB [0,1] [1,3,H,W].
    """
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}")
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    content_target = criterion.content_features(content)
    if init == "content":
        start = content.detach().clone(memory_format=torch.contiguous_format)
    else:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        start = torch.rand(content.shape, generator=gen).to(content.device)
    image = start.requires_grad_(True)
    step_size = base_step = lr or (1.0 if optimizer == "lbfgs" else 0.02)

    def make_optimizer(step_size: float) -> torch.optim.Optimizer:
        if optimizer == "lbfgs":
            # One L-BFGS iteration per step() call; its curvature history persists across calls.
            # PyTorch's first L-BFGS iteration is a gradient step of L1 norm lr (min(1, 1/|g|_1)
            # times lr); with lr=1 that moves a pixel by about 1e-5, which changes a loss of
            # 1e12 by less than fp32 resolves, so the first curvature pair is rounding noise
            # and the next full step explodes. The first iteration therefore moves pixels by
            # FIRST_STEP on average, scaled like the step size; the rest use lr=step_size.
            first = FIRST_STEP * image.numel() * step_size / base_step
            return torch.optim.LBFGS([image], lr=first, max_iter=1, history_size=50)
        return torch.optim.Adam([image], lr=step_size)

    opt = make_optimizer(step_size)
    history: list[dict[str, float]] = []
    best_image = image.detach().clone()
    best_total = math.inf
    restarts = 0

    def closure() -> torch.Tensor:
        # clamp: keep the pixels in [0, 1] before every evaluation, so the recorded loss is the
        # saved image's (the evaluation needs that). Unconstrained, L-BFGS can lower the loss
        # with out-of-range pixels that the saved image cannot hold. The default (stylize.py)
        # stays unconstrained, as the seed's method is.
        if clamp or optimizer == "adam":
            with torch.no_grad():
                image.clamp_(0, 1)
        opt.zero_grad(set_to_none=True)
        l_style, l_content = criterion(image, content_target)
        l_tv = tv_loss(image) if tv > 0 else image.new_zeros(())
        loss = total_loss(l_style, l_content, alpha, beta) + tv * l_tv
        loss.backward()
        total = loss.item()
        history.append(
            {
                "style": l_style.item(),
                "content": l_content.item(),
                "tv": l_tv.item(),
                "total": total,
                "seconds": time.perf_counter() - start_time,
            }
        )
        nonlocal best_total
        if total < best_total:  # the image this loss belongs to
            best_total = total
            best_image.copy_(image.detach())
        return loss

    start_time = time.perf_counter()  # read by the closure
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False, unit="step")
    calm = 0
    done = 0
    for done in range(1, steps + 1):
        before = len(history)
        opt.step(closure)
        if optimizer == "lbfgs":
            opt.param_groups[0]["lr"] = step_size  # after the first iteration (see above)
        last = history[-1]["total"]
        if not math.isfinite(last) or last > BLOWUP * best_total:
            # The previous update overshot: back to the best image, forget the curvature
            # history, halve the step size.
            if restarts == MAX_RESTARTS or not math.isfinite(best_total):
                raise FloatingPointError(
                    f"the loss became {last:.4g} at step {done} after {restarts} restarts at "
                    "smaller step sizes; lower alpha/beta or the learning rate (lr=)"
                )
            restarts += 1
            step_size /= 2
            with torch.no_grad():
                image.copy_(best_image)
            opt = make_optimizer(step_size)
            calm = 0
            bar.update(1)
            if on_step is not None:
                with torch.no_grad():
                    on_step(done, image.detach().clamp(0, 1))
            continue
        bar.update(1)
        bar.set_postfix(loss=f"{last:.4g}")
        if on_loss is not None:
            on_loss(done, history[-1])
        if stop_below is not None and last <= stop_below:
            # `last` is the loss of the image before this step's update, the first at or below
            # stop_below and so the best so far: that image is returned (below).
            done -= 1
            break
        if on_step is not None:
            with torch.no_grad():
                on_step(done, image.detach().clamp(0, 1))
        if before and len(history) > 1:
            prev = history[-2]["total"]
            calm = calm + 1 if abs(prev - last) <= tol * max(abs(prev), 1e-12) else 0
            if calm >= 5:
                break
    bar.close()
    with torch.no_grad():
        # The last update is never evaluated: return the best image whose loss is known.
        image.copy_(best_image)
        result = image.detach().clamp(0, 1)
    return OptimizeResult(result, done, time.perf_counter() - start_time, history, restarts)


def stylize_by_optimization(
    content: torch.Tensor,
    style_image: torch.Tensor,
    criterion: PerceptualCriterion,
    *,
    preserve_colors: bool = False,
    **kwargs,
) -> OptimizeResult:
    """Set the style, optimize, and optionally keep the content's colours.

    With preserve_colors, the transfer runs on luminance only (style luminance matched to the
    content's mean and std) and the result takes the content's chrominance (Gatys et al. 2017).
    content, style_image: RGB [0,1] [1,3,H,W]. kwargs go to optimize_image.
    """
    if preserve_colors:
        criterion.set_style(match_luminance(style_image, content))
        result = optimize_image(_gray3(content), criterion, **kwargs)
        result.image = preserve_color(content, result.image)
        return result
    criterion.set_style(style_image)
    return optimize_image(content, criterion, **kwargs)
