from __future__ import annotations

import math

import torch


def strength_to_alpha(strength: torch.Tensor | float, alpha_min: float, alpha_max: float):
    """Style strength s in [0, 1] -> style weight α = alpha_min·(alpha_max/alpha_min)^s."""
    return alpha_min * (alpha_max / alpha_min) ** strength


def sample_strengths(
    n: int, sampling: str, gen: torch.Generator, ends: float = 0.0, margin: float = 0.0
) -> torch.Tensor:
    """n strengths in [0, 1]: uniform, or arcsine (Beta(½, ½), s = sin²(π·u/2) for u uniform:
    density 1/(π·√(s(1−s))): 20% of draws within 0.1 of each end, where uniform has 10%);
    with ends > 0, that share of the draws is exactly 0 or 1, half each. With margin m > 0 the
    draws are stretched over [−m, 1 + m] (the ends' share at −m and 1 + m), so that s = 0 and
    s = 1 have trained neighbours on both sides."""
    u, pick = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    if sampling == "uniform":
        s = u
    elif sampling == "arcsine":
        s = torch.sin(u * (math.pi / 2)) ** 2
    else:
        raise ValueError(f"loss.strength_sampling must be uniform or arcsine, got {sampling!r}")
    at_end = pick < ends
    s = torch.where(at_end, (pick < ends / 2).to(s.dtype), s)
    return s * (1 + 2 * margin) - margin if margin else s
