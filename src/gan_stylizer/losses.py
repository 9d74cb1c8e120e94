"""The seed's losses (Gatys et al.) and the adversarial terms, as pure functions.

Feature maps come from models/vgg.py. Every loss here is a per-sample sum as the method defines
it, averaged over the batch. Gram matrices are always computed in fp32, also under autocast:
in bf16 their sums over thousands of positions lose most of their digits.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix G = F·Fᵀ of a feature map: [B, N, H, W] -> [B, N, N], fp32, unnormalized."""
    b, n, h, w = features.shape
    flat = features.float().reshape(b, n, h * w)
    with torch.autocast(device_type=flat.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2))


def style_layer_loss(
    target_gram: torch.Tensor, target_m: int, features: torch.Tensor
) -> torch.Tensor:
    """One layer's term 1/(4·N²·M²)·‖G(S) − G(G)‖², per sample: [B].

    The seed's formula assumes style and generated images of equal size M. To compare a style
    image of M_s positions with an output of M positions, both Grams are divided by their own M
    first; for equal sizes this is exactly 1/(4·N²·M²)·‖G_s − G‖².
    target_gram: [N, N] or [B, N, N] (unnormalized), target_m: positions of the style map.
    """
    _, n, h, w = features.shape
    m = h * w
    diff = gram(features) / m - target_gram.float() / target_m
    return diff.pow(2).sum(dim=(-2, -1)) / (4.0 * n * n)


def style_loss(
    target_grams: Mapping[str, tuple[torch.Tensor, int]],
    features: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
    reduce: bool = True,
) -> torch.Tensor:
    """L_style = Σ_l w_l · 1/(4·N_l²·M_l²) · ‖G_l(S) − G_l(G)‖², mean over the batch: scalar
    (reduce=False: per sample, [B]).

    target_grams: {layer: (gram of the style image [N,N], its M)}; features: {layer: [B,N,H,W]}.
    """
    total = None
    for layer, weight in layer_weights.items():
        g, m = target_grams[layer]
        term = weight * style_layer_loss(g, m, features[layer])
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_loss needs at least one style layer")
    return total.mean() if reduce else total


def content_loss(target: torch.Tensor, features: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """L_content = ½·‖F_l(C) − F_l(G)‖², per-sample sum, mean over the batch: scalar
    (reduce=False: per sample, [B]).

    target, features: [B, N, H, W] at the content layer (fp32 accumulation).
    """
    diff = features.float() - target.float()
    per_sample = 0.5 * diff.pow(2).flatten(1).sum(dim=1)
    return per_sample.mean() if reduce else per_sample


def tv_loss(image: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """Total variation Σ (Δx² + Δy²) of an RGB [0,1] image [B,3,H,W], mean over the batch
    (reduce=False: one value per image)."""
    image = image.float()
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).flatten(1).sum(1)
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).flatten(1).sum(1)
    return (dx + dy).mean() if reduce else dx + dy


def total_loss(
    l_style: torch.Tensor, l_content: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
    """L = α·L_style + β·L_content (α the style weight, β the content weight)."""
    return alpha * l_style + beta * l_content


ADVERSARIAL_LOSSES = ("hinge", "nonsaturating", "lsgan")


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss on D's raw outputs (any shape): scalar."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1.0).pow(2).mean() + fake_logits.pow(2).mean())
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL_LOSSES}, got {kind!r}")


def g_adv_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss on D's outputs for generated samples: scalar."""
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * (fake_logits - 1.0).pow(2).mean()
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL_LOSSES}, got {kind!r}")


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 = ½·E‖∇_x D(x)‖² on real samples (Mescheder et al. 2018); real must require grad."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return 0.5 * grad.float().pow(2).flatten(1).sum(1).mean()
