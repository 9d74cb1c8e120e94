"""The style weight calibrated from the painting: paintings differ greatly in how hard their
Gram statistics pull (Starry Night's pull on photos is 2-3 times that of the other paintings of
the registry), so the same alpha is a strong style for one and a palette for another. The style
term is scaled, first by REFERENCE_PULL / pull(painting), then by the second stage's correction
below, so that alpha, and a dial's strength, mean the same amount of style for every painting;
alpha stays the one tuned on Starry Night.

pull(painting) is the mean style loss of scikit-image's sample photos (always installed, so
every run measures on the same photos) against the painting, under the run's own criterion.

The pull equalizes how far the photos start from the painting, not how much of the painting the
objective asks for: under the pull's factor, The Scream's per-image optimum at the default
strength is nearly the photo, and keeps twice the share of its style loss that the other
paintings' optima keep (docs/results.md). So a second stage corrects the factor: the per-image
optimum of training crops of two sample photos at REFERENCE_ALPHA times the factor, measured at
two style weights a DIAL_STEP apart, log-linear in between, must leave Starry Night's share of
the photos' style loss (REFERENCE_SHARE): the same amount of style, as the objective measures
it, at the same strength.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gan_stylizer.config.schema import DataConfig, TrainConfig, VGGConfig
from gan_stylizer.io.images import load_image
from gan_stylizer.io.inputs import sample_photos
from gan_stylizer.optimize import optimize_image
from gan_stylizer.perceptual import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, PerceptualCriterion

# Starry Night's pull: the sample photos at PHOTO_SIZE, the painting at 768 px, caffe VGG19 at
# the default layers (research/calibration.py prints it, and every registry painting's).
REFERENCE_PULL = 2.256e10
PHOTO_SIZE = 256
LIMITS = (0.1, 10.0)  # a painting that pulls 10x less (or more) is scaled no further
# The second stage: Starry Night's optimum (astronaut and chelsea as training crops, L-BFGS from
# the photo for SHARE_STEPS steps at alpha 5, beta 1) leaves this share of their style loss.
REFERENCE_SHARE = 0.0603
REFERENCE_ALPHA, REFERENCE_BETA = 5.0, 1.0  # loss.alpha's default, and the dial's α at s = 0.5
SHARE_PHOTOS = 2  # the first sample photos: astronaut (public domain) and chelsea (CC0)
SHARE_STEPS = 60
DIAL_STEP = 5.0  # the α ratio between the two measurements: half the default dial (1..25)


def not_applicable(cfg: TrainConfig) -> str | None:
    """Why the calibration cannot apply to this run's criterion, or None: REFERENCE_PULL was
    measured under the default network and layers only."""
    loss = cfg.loss
    if not loss.calibrate:
        return "loss.calibrate=false"
    default_layers = {name: 1.0 / len(DEFAULT_STYLE_LAYERS) for name in DEFAULT_STYLE_LAYERS}
    if loss.vgg != VGGConfig() or dict(loss.style_layers) != default_layers:
        return "another perceptual network or other style layers than the reference's"
    if loss.content_layer != DEFAULT_CONTENT_LAYER:
        return "another content layer than the reference's"
    return None


@torch.no_grad()
def pull(criterion: PerceptualCriterion, style_image: torch.Tensor) -> float:
    """Mean style loss of the sample photos against style_image (which becomes the style)."""
    criterion.set_style(style_image)
    losses = []
    for path in sample_photos():
        photo = load_image(path, size=PHOTO_SIZE).to(style_image.device)
        losses.append(criterion(photo, None)[0].item())
    return sum(losses) / len(losses)


def training_crop(path: Path) -> torch.Tensor:
    """The photo as training sees it by default: its long side at the middle of
    data.resize_long_side, then the centre crop of data.image_size."""
    data = DataConfig()
    image = load_image(path, size=sum(data.resize_long_side) // 2)
    h, w, size = image.shape[-2], image.shape[-1], data.image_size
    top, left = (h - size) // 2, (w - size) // 2
    return image[..., top : top + size, left : left + size].contiguous()


def optimum(criterion, photos, alpha: float, beta: float) -> tuple[float, float, list]:
    """(mean share of the photos' style loss its optimum leaves, mean content loss it pays, the
    optimized images): L-BFGS from each photo for SHARE_STEPS steps; the criterion holds the
    style. A photo whose style loss is already 0 leaves a share of 1 (nothing to remove)."""
    shares, contents, images = [], [], []
    for photo in photos:
        with torch.no_grad():
            start = criterion(photo, None)[0].item()
        result = optimize_image(
            photo, criterion, alpha=alpha, beta=beta, steps=SHARE_STEPS, progress=False
        )
        shares.append(result.final["style"] / start if start > 0 else 1.0)
        contents.append(result.final["content"])
        images.append(result.image)
    return sum(shares) / len(shares), sum(contents) / len(contents), images


def step_for(share: float) -> float:
    """Where the second measurement goes: DIAL_STEP times the style weight when the optimum
    leaves more than REFERENCE_SHARE, a DIAL_STEP less otherwise."""
    return DIAL_STEP if share > REFERENCE_SHARE else 1 / DIAL_STEP


def share_correction(
    criterion: PerceptualCriterion, factor: float, device: torch.device | str = "cpu"
) -> tuple[float, float]:
    """(the second stage's correction to `factor`, the share its optimum leaves at factor),
    measured on the sample photos' training crops on `device`. The criterion holds the
    painting's style."""
    photos = [training_crop(path).to(device) for path in sample_photos()[:SHARE_PHOTOS]]
    alpha = REFERENCE_ALPHA * factor
    share = optimum(criterion, photos, alpha, REFERENCE_BETA)[0]
    step = step_for(share)
    other = optimum(criterion, photos, alpha * step, REFERENCE_BETA)[0]
    return correction_for(share, other, step), share


def correction_for(share: float, other: float, step: float) -> float:
    """The ratio of style weights under which the optimum leaves REFERENCE_SHARE, given the
    shares it leaves at one α (`share`) and at `step` times it (`other`): log-linear in log α,
    extended beyond the two, and no further than the span of LIMITS (a share that barely
    moves would ask for any factor); 1 where the share does not fall as α rises."""
    falls = other < share if step > 1 else other > share
    if not (share > 0 and other > 0 and falls):
        return 1.0
    slope = (math.log(other) - math.log(share)) / math.log(step)
    span = math.log(LIMITS[1] / LIMITS[0])
    return math.exp(min(max((math.log(REFERENCE_SHARE) - math.log(share)) / slope, -span), span))


def factor_for(measured: float) -> float:
    """The factor on the style term of a painting that pulls `measured` (> 0): Starry Night's
    pull over it, within LIMITS."""
    return min(max(REFERENCE_PULL / measured, LIMITS[0]), LIMITS[1])


def style_scale(
    cfg: TrainConfig, criterion: PerceptualCriterion, style_image: torch.Tensor
) -> tuple[float, str]:
    """(the factor on the style term, a line that says what it is and why)."""
    why_not = not_applicable(cfg)
    if why_not is not None:
        return 1.0, f"style weight as given ({why_not})"
    measured = pull(criterion, style_image.float())
    if not measured > 0:
        return 1.0, "style weight as given (the painting's pull could not be measured)"
    first = factor_for(measured)
    correction, share = share_correction(criterion, first, style_image.device)
    scale = min(max(first * correction, LIMITS[0]), LIMITS[1])
    bounded = "" if scale == first * correction else f", bounded to {LIMITS[0]:g}-{LIMITS[1]:g}"
    return scale, (
        f"style weight calibrated: {cfg.style.name} pulls {measured:.3g} (Starry Night "
        f"{REFERENCE_PULL:.3g}), and its optimum under that keeps {share:.4f} of the photos' "
        f"style loss (Starry Night {REFERENCE_SHARE:.4f}), so the style term is scaled by "
        f"{first:.3g} x {correction:.3g} = {scale:.3g}{bounded}"
    )
