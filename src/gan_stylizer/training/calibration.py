"""The style weight calibrated from the painting: paintings differ greatly in how hard their
Gram statistics pull (Starry Night's pull on photos is 2-3 times that of the other paintings of
the registry), so the same alpha is a strong style for one and a palette for another. The style
term is scaled by REFERENCE_PULL / pull(painting), so that alpha, and a dial's strength, mean
the same amount of style for every painting; alpha stays the one tuned on Starry Night.

pull(painting) is the mean style loss of scikit-image's sample photos (always installed, so
every run measures on the same photos) against the painting, under the run's own criterion.
"""

from __future__ import annotations

import torch

from gan_stylizer.config.schema import TrainConfig, VGGConfig
from gan_stylizer.io.images import load_image
from gan_stylizer.io.inputs import sample_photos
from gan_stylizer.perceptual import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, PerceptualCriterion

# Starry Night's pull: the sample photos at PHOTO_SIZE, the painting at 768 px, caffe VGG19 at
# the default layers (research/calibration.py prints it, and every registry painting's).
REFERENCE_PULL = 2.256e10
PHOTO_SIZE = 256
LIMITS = (0.1, 10.0)  # a painting that pulls 10x less (or more) is scaled no further


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
    scale = factor_for(measured)
    return scale, (
        f"style weight calibrated: {cfg.style.name} pulls {measured:.3g} (Starry Night "
        f"{REFERENCE_PULL:.3g}), so the style term is scaled by {scale:.3g}"
    )
