"""The strength dial: one conditioned generator for a range of style weights.

A conditioned generator takes a strength s in [0, 1] beside the photo and is trained with
α = alpha_min·(alpha_max/alpha_min)^s, a log scale (s = 0.5 is their geometric mean). Three
settings make its ends match models trained at one α alone; each was measured at 1000 steps
against dedicated α = 1, 5 and 25 models (docs/strength-dial.md, history in docs/results.md)
and is built in here, not offered as an option:

- the draws: each image's s is arcsine-distributed (Beta(½, ½), s = sin²(π·u/2)), with
  ENDS of the draws exactly at an end, stretched by MARGIN beyond [0, 1], so that s = 0 and
  s = 1 have trained neighbours on both sides and are not pulled towards the middle;
- the perceptual pull: image i's perceptual loss is scaled by α_mid/α_i (α_mid = √(alpha_min ·
  alpha_max)), so that the α = 25 images do not set Adam's steps for the whole batch; each
  image's own optimum is unchanged;
- the adversarial share: λ is taken per image (λ_i = ‖∂L_perceptual/∂y_i‖ / ‖∂L_adv/∂y_i‖):
  with one λ per batch, the α = 25 images set its scale and an α = 1 image got an adversarial
  push several times its own perceptual gradient.

A plain generator has one α for every image: no draws, no pull balance, one λ per batch.
"""

from __future__ import annotations

import math

import torch

ENDS = 0.3  # share of the draws exactly at an end (half at each)
MARGIN = 0.1  # the draws cover [-MARGIN, 1 + MARGIN]
DRAWS = f"strengths drawn arcsine, {ENDS:.0%} at the ends, over [{-MARGIN:g}, {1 + MARGIN:g}]"


def strength_to_alpha(strength: torch.Tensor | float, alpha_min: float, alpha_max: float):
    """Style strength s in [0, 1] -> style weight α = alpha_min·(alpha_max/alpha_min)^s."""
    return alpha_min * (alpha_max / alpha_min) ** strength


def sample_strengths(n: int, gen: torch.Generator) -> torch.Tensor:
    """n training strengths [n] in [-MARGIN, 1 + MARGIN]: arcsine (density 1/(π·√(s(1−s))),
    20% of draws within 0.1 of each end where uniform has 10%), ENDS of them exactly at an end,
    then stretched by MARGIN. Drawn from `gen` (a CPU generator)."""
    u, pick = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    s = torch.sin(u * (math.pi / 2)) ** 2
    s = torch.where(pick < ENDS, (pick < ENDS / 2).to(s.dtype), s)
    return s * (1 + 2 * MARGIN) - MARGIN


def balance_pull(
    per_image: torch.Tensor, alphas: torch.Tensor, alpha_min: float, alpha_max: float
) -> torch.Tensor:
    """Each image's perceptual loss [B] scaled by α_mid/α_i, so every strength pulls on G alike."""
    return per_image * (math.sqrt(alpha_min * alpha_max) / alphas)


def adversarial_weights(
    grad: torch.Tensor, grad_adv: torch.Tensor, per_image: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(λ to multiply grad_adv by, the λ to log): ‖perceptual gradient‖ / ‖adversarial
    gradient‖ at the output pixels [B, 3, H, W], per image ([B, 1, 1, 1]; a conditioned batch)
    or over the batch (a scalar)."""
    if per_image:
        lam = grad.flatten(1).norm(dim=1) / (grad_adv.flatten(1).norm(dim=1) + 1e-12)
        return lam.view(-1, 1, 1, 1), lam.mean()
    lam = grad.norm() / (grad_adv.norm() + 1e-12)
    return lam, lam
