"""Image transformation network in the family of Johnson et al. (2016).

Reflection-padded convolutions, two stride-2 downsamplings, residual blocks, and upsampling by
nearest-neighbour resize followed by a convolution: transposed convolutions overlap unevenly and
leave checkerboard artifacts (Odena et al., 2016).

A conditioned generator (conditioned=True) takes a style strength s in [0, 1] as a second input:
every instance norm's scale and shift are modulated by an embedding of s (FiLM, Perez et al.
2018; conditional instance normalization, Dumoulin et al. 2017), so one network covers a range
of style weights (training maps s to α on a log scale; see gan_stylizer.system).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")


DEFAULT_STRENGTH = 0.5
COND_DIM = 64  # width of the strength embedding


class StrengthEmbedding(nn.Module):
    """Style strength s in [0, 1], [B] -> [B, dim]: s and sin/cos(π·k·s) for k = 1..4, then a
    small MLP. The Fourier features let the MLP bend its response to s without a deep net."""

    def __init__(self, dim: int = COND_DIM, frequencies: int = 4) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(
            nn.Linear(1 + 2 * frequencies, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU()
        )

    def forward(self, strength: torch.Tensor) -> torch.Tensor:
        s = strength.reshape(-1, 1).to(self.mlp[0].weight.dtype)
        k = torch.arange(1, self.frequencies + 1, device=s.device, dtype=s.dtype) * math.pi
        return self.mlp(torch.cat([s, torch.sin(s * k), torch.cos(s * k)], dim=-1))


class CondInstanceNorm(nn.InstanceNorm2d):
    """Instance norm whose affine scale and shift follow the strength embedding e:
    y = IN(x)·(1 + Δγ(e)) + Δβ(e), with Δγ, Δβ a linear map of e initialised to zero (a
    conditioned generator starts as the plain one). Statistics are those of nn.InstanceNorm2d."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__(channels, affine=True)
        self.film = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def film_params(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each [B, C, 1, 1], for the embedding [B, cond_dim]."""
        gamma, beta = self.film(emb).chunk(2, dim=-1)
        return (1.0 + gamma)[..., None, None], beta[..., None, None]

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        y = super().forward(x)
        if emb is None:
            raise ValueError("a conditioned norm needs the strength embedding")
        scale, shift = self.film_params(emb)
        return y * scale.to(y.dtype) + shift.to(y.dtype)


def _norm(kind: str, channels: int, cond_dim: int = 0) -> nn.Module:
    if kind == "instance":
        if cond_dim:
            return CondInstanceNorm(channels, cond_dim)
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
        cond_dim: int = 0,
    ) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, bias=norm != "instance"),
        ]
        if act:
            layers += [_norm(norm, c_out, cond_dim), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, cond_dim: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm=norm, cond_dim=cond_dim),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "instance"),
            _norm(norm, channels, cond_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Nearest-neighbour ×2 then conv: the checkerboard-free alternative to ConvTranspose2d."""

    def __init__(self, c_in: int, c_out: int, norm: str, cond_dim: int = 0) -> None:
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, 3, norm=norm, cond_dim=cond_dim)

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

    def __init__(
        self,
        channels: int = 32,
        n_residual: int = 5,
        norm: str = "instance",
        conditioned: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1 or n_residual < 0:
            raise ValueError("generator channels must be ≥ 1 and n_residual ≥ 0")
        if conditioned and norm != "instance":
            raise ValueError("a conditioned generator modulates instance norms: use norm=instance")
        c1, c2, c3 = channels, channels * 2, channels * 4
        self.config = {"channels": channels, "n_residual": n_residual, "norm": norm}
        if conditioned:  # plain generators keep the config (and checkpoints) they always had
            self.config["conditioned"] = True
        self.conditioned = conditioned
        cond = COND_DIM if conditioned else 0
        self.embed = StrengthEmbedding(COND_DIM) if conditioned else None
        self.encoder = nn.Sequential(
            ConvLayer(3, c1, 9, norm=norm, cond_dim=cond),
            ConvLayer(c1, c2, 3, stride=2, norm=norm, cond_dim=cond),
            ConvLayer(c2, c3, 3, stride=2, norm=norm, cond_dim=cond),
        )
        self.residual = nn.Sequential(*(ResidualBlock(c3, norm, cond) for _ in range(n_residual)))
        self.decoder = nn.Sequential(
            UpsampleConv(c3, c2, norm, cond),
            UpsampleConv(c2, c1, norm, cond),
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

    def strength_embedding(
        self,
        strength: float | Sequence[float] | torch.Tensor | None,
        batch: int,
        check_range: bool = True,
    ) -> torch.Tensor:
        """The embedding [batch, COND_DIM] of a strength (None: DEFAULT_STRENGTH), a float or a
        tensor/sequence of one value or one per image, each in [0, 1] (check_range=False:
        training, whose draws lie a margin beyond; gan_stylizer.dial)."""
        if self.embed is None:
            raise ValueError("this generator has no strength input (it was not trained with one)")
        device = self.embed.mlp[0].weight.device
        s = torch.as_tensor(
            DEFAULT_STRENGTH if strength is None else strength, dtype=torch.float32, device=device
        ).reshape(-1)
        if s.numel() not in (1, batch):
            raise ValueError(f"strength: one value or one per image ({batch}), got {s.numel()}")
        in_range = torch.compiler.is_compiling() or bool(((s >= 0) & (s <= 1)).all())
        if check_range and not in_range:
            raise ValueError(f"strength must be in [0, 1], got {s.tolist()}")
        return self.embed(s.expand(batch))

    @staticmethod
    def is_strength_parameter(name: str) -> bool:
        """A parameter of the strength path (the embedding and every norm's FiLM layer), by its
        name in named_parameters()."""
        return name.startswith("embed.") or ".film." in name

    def trunk(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        """The network between prepare() and the final sigmoid: [B, 3, H', W'] -> same."""
        if emb is None:
            return self.decoder(self.residual(self.encoder(x)))
        return _conditioned(
            self.decoder, _conditioned(self.residual, _conditioned(self.encoder, x, emb), emb), emb
        )

    def forward(
        self,
        content: torch.Tensor,
        strength: float | Sequence[float] | torch.Tensor | None = None,
        check_range: bool = True,
    ) -> torch.Tensor:
        """strength: only for a conditioned generator (default DEFAULT_STRENGTH), in [0, 1]
        unless check_range=False."""
        # strength_embedding refuses a strength for a generator without the input.
        use = self.conditioned or strength is not None
        emb = self.strength_embedding(strength, content.shape[0], check_range) if use else None
        h, w = content.shape[-2:]
        y = self.trunk(self.prepare(content), emb)[..., :h, :w]
        return torch.sigmoid(y.float())


def _conditioned(module: nn.Module, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """Run a part of the generator with the strength embedding handed to every conditioned norm
    (nn.Sequential cannot pass a second argument)."""
    if isinstance(module, CondInstanceNorm):
        return module(x, emb)
    if isinstance(module, ResidualBlock):
        return x + _conditioned(module.body, x, emb)
    if isinstance(module, UpsampleConv):
        return _conditioned(module.conv, F.interpolate(x, scale_factor=2, mode="nearest"), emb)
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = _conditioned(layer, x, emb)
        return x
    return module(x)


def build_generator(model_cfg: dict) -> Generator:
    """Generator from the plain-dict model config stored in checkpoints."""
    g = model_cfg["generator"]
    return Generator(
        channels=g["channels"],
        n_residual=g["n_residual"],
        norm=g["norm"],
        conditioned=bool(g.get("conditioned", False)),
    )
