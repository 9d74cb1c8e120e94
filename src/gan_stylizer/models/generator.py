"""Image transformation network in the family of Johnson et al. (2016).

Reflection-padded convolutions, two stride-2 downsamplings, residual blocks, and upsampling by
nearest-neighbour resize followed by a convolution: transposed convolutions overlap unevenly and
leave checkerboard artifacts (Odena et al., 2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"generator norm must be one of {NORMS}, got {kind!r}")


class ConvLayer(nn.Sequential):
    """Reflection pad + conv (+ norm + ReLU): keeps borders free of zero-padding artifacts."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        norm: str = "instance",
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, bias=norm != "instance"),
        ]
        if act:
            layers += [_norm(norm, c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm=norm),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "instance"),
            _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Nearest-neighbour ×2 then conv: the checkerboard-free alternative to ConvTranspose2d."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, 3, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """Stylizer: RGB [0,1] [B,3,H,W] -> stylized RGB [0,1] [B,3,H,W], any H, W ≥ 1.

    Inputs are padded to a multiple of 4 (the two downsamplings), and to at least MIN_SIZE so
    that every reflection pad inside has room, then cropped back: any size works and the output
    has exactly the input's size.
    """

    MULTIPLE = 4
    MIN_SIZE = 16

    def __init__(self, channels: int = 32, n_residual: int = 5, norm: str = "instance") -> None:
        super().__init__()
        if channels < 1 or n_residual < 0:
            raise ValueError("generator channels must be ≥ 1 and n_residual ≥ 0")
        c1, c2, c3 = channels, channels * 2, channels * 4
        self.config = {"channels": channels, "n_residual": n_residual, "norm": norm}
        self.encoder = nn.Sequential(
            ConvLayer(3, c1, 9, norm=norm),
            ConvLayer(c1, c2, 3, stride=2, norm=norm),
            ConvLayer(c2, c3, 3, stride=2, norm=norm),
        )
        self.residual = nn.Sequential(*(ResidualBlock(c3, norm) for _ in range(n_residual)))
        self.decoder = nn.Sequential(
            UpsampleConv(c3, c2, norm),
            UpsampleConv(c2, c1, norm),
            ConvLayer(c1, 3, 9, act=False, norm="none"),
        )

    def prepare(self, content: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> the network's input in [-1, 1], padded to [B, 3, H', W']
        with H', W' multiples of MULTIPLE and at least MIN_SIZE (crop the output to H, W)."""
        if content.dim() != 4 or content.shape[1] != 3:
            raise ValueError(f"Generator expects [B, 3, H, W], got {tuple(content.shape)}")
        return self.pad(content * 2.0 - 1.0)

    @classmethod
    def pad(cls, image: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> padded at the bottom and right to multiples of MULTIPLE, at least
        MIN_SIZE (reflection; replication where the image is too small to reflect)."""
        h, w = image.shape[-2:]
        pad_h = max(-h % cls.MULTIPLE, cls.MIN_SIZE - h)
        pad_w = max(-w % cls.MULTIPLE, cls.MIN_SIZE - w)
        if not (pad_h or pad_w):
            return image
        # Bottom and right only, so the stride-4 grid stays anchored at the top-left corner:
        # tiles cut at multiples of 4 line up with the whole image.
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        h, w = content.shape[-2:]
        x = self.prepare(content)
        y = self.decoder(self.residual(self.encoder(x)))[..., :h, :w]
        return torch.sigmoid(y.float())
