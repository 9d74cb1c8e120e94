"""Colour: luminance-only transfer (Gatys et al. 2017, "Controlling perceptual factors"), the
YIQ conversions it uses, and CIELab for the ruler's palette distance; every function takes RGB
[B, 3, H, W] in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# NTSC YIQ: Y is luma (Rec. 601 weights); I and Q carry the colour.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)


_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)  # exact inverse, so a round trip is lossless


_COLOR_CHUNK = 2**20  # pixels per band in preserve_color


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    _check_rgb(image, "image")
    return torch.einsum("ij,bjhw->bihw", matrix.to(image.device, image.dtype), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> YIQ: Y in [0, 1], I in about ±0.6, Q in about ±0.52."""
    return _mix(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] YIQ -> RGB, not clamped (a YIQ triple may lie outside the RGB cube)."""
    return _mix(_YIQ_TO_RGB, image)


# sRGB (D65) linear light -> CIE XYZ, then XYZ scaled by the D65 white point.
_RGB_TO_XYZ = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=torch.float64,
)


_D65_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] sRGB in [0, 1] -> CIELab (D65): L in [0, 100], a and b in about ±100, so that
    a Euclidean distance is ΔE (CIE76). Computed in float64 and returned in float32."""
    _check_rgb(image, "image")
    rgb = image.double().clamp(0, 1)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    matrix = _RGB_TO_XYZ / _D65_WHITE.view(3, 1)
    xyz = torch.einsum("ij,bjhw->bihw", matrix.to(image.device), linear)
    eps = (6 / 29) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = torch.stack(
        (116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])), dim=1
    )
    return lab.float()


def luminance(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> luma Y [B, 1, H, W] in [0, 1] (Rec. 601 weights)."""
    return rgb_to_yiq(image)[:, :1]


def preserve_color(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1]: the stylized image's luminance with the content's colour (I, Q).

    Luminance-only transfer (Gatys et al. 2017): the style changes the strokes and the light,
    the photo keeps its colours. The content is moved to the stylized image's device and resized
    to its size if they differ; a single content image is broadcast over a stylized batch.
    The result is clamped to [0, 1] and has the stylized image's dtype.
    """
    _check_rgb(content, "content")
    _check_rgb(stylized, "stylized")
    if content.shape[0] not in (1, stylized.shape[0]):
        raise ValueError(
            f"content batch {content.shape[0]} does not match stylized batch {stylized.shape[0]}"
        )
    target = stylized.float()
    content = content.to(target.device, torch.float32)
    if content.shape[-2:] != target.shape[-2:]:
        content = F.interpolate(
            content, size=target.shape[-2:], mode="bicubic", antialias=True, align_corners=False
        )
    content = content.expand(target.shape[0], -1, -1, -1)
    out = torch.empty_like(target, dtype=stylized.dtype)
    # Pointwise, so done in bands of rows: a few float copies of a band, not of a 4K image.
    rows = max(1, _COLOR_CHUNK // (target.shape[0] * target.shape[-1]))
    for r in range(0, target.shape[-2], rows):
        band = slice(r, r + rows)
        yiq = torch.cat(
            [luminance(target[..., band, :]), rgb_to_yiq(content[..., band, :])[:, 1:]], dim=1
        )
        out[..., band, :] = yiq_to_rgb(yiq).clamp_(0, 1)
    return out


def _check_rgb(image: torch.Tensor, name: str) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"{name} must be [B, 3, H, W], got shape {tuple(image.shape)}")
