"""One-pass inference with a trained generator: fast precision, and tiles for any image size.

`Stylizer` runs the generator's own modules (the arithmetic of `Generator.forward`) itself, so
that it can

- run in bf16 or fp16 with channels-last tensors, computing instance norm as group norm with one
  group per channel (the same function; PyTorch's CPU kernel for it reads channels-last bf16
  directly, where `instance_norm` copies its input twice);
- split a large image into tiles with bounded memory while every instance-norm layer still
  normalizes with the mean and variance of the *whole* image. Instance norm is global: a tile
  normalized with its own statistics comes out in another colour and contrast than its
  neighbours, and the seams show.

Tiling follows the network's shape: full resolution -> encoder -> a 1/4-resolution trunk of
residual blocks -> decoder -> full resolution. The trunk's activations (c·4 channels at 1/16 of
the pixels) are kept whole; everything at full or half resolution exists one tile at a time.

1. Encoder: for each of its norm layers in turn, a pass over the tiles accumulates that layer's
   per-channel mean and variance over the whole image (the earlier layers use the statistics
   already found); a last pass writes the trunk input.
2. Trunk, block by block: its first convolution is written tile by tile into a second buffer and
   normalized with that buffer's statistics; the second convolution's statistics take one pass,
   and a second pass adds its normalized output to the trunk in place.
3. Decoder: one statistics pass per norm layer, then the output, tile by tile.

Every tile is cut with more context (a halo) than the layers it goes through can see, so each
pixel it keeps is the pixel the untiled network computes: tiled output equals untiled output up
to floating-point rounding. Neighbouring output tiles overlap by 2·FEATHER pixels and are blended
with linear weights that sum to one, which hides what rounding differences remain (bf16).
Cost: about 1.5-2x the untiled forward pass; memory: the input, the output, two trunk buffers
(about 2x16 bytes per input pixel in bf16) and one tile's activations.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_stylizer.models.generator import (
    CondInstanceNorm,
    ConvLayer,
    Generator,
    ResidualBlock,
    UpsampleConv,
)

PRECISIONS = ("auto", "32", "bf16", "fp16")
DTYPES = {"32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# tile=auto tiles images with more pixels than this (1920x1080 still runs whole: about 1 GB
# peak in fp32); a tile is DEFAULT_TILE px square (its activations: about 40 MB per layer).
AUTO_TILE_PIXELS = 2**21
DEFAULT_TILE = 512
MIN_TILE = 64
# Halos in 1/4-resolution pixels. Encoder: an output pixel of the third layer sees 7 input
# pixels each way (9x9 conv, then two stride-2 3x3 convs), so 2 (8 px) would do. Decoder: a
# padding error at a tile's edge reaches 7 output pixels in (3x3 at 1/2, 3x3 and 9x9 at full
# resolution); 4 (16 px) leaves room for the FEATHER px each tile keeps beyond its own area.
ENCODER_HALO = 3
DECODER_HALO = 4
FEATHER = 8  # output px each side of a seam over which neighbouring tiles are blended
_CHUNK_ELEMENTS = 2**24  # elements per chunk when a whole buffer is normalized in place


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 beats fp32.

    Elsewhere PyTorch emulates bf16 on the CPU, which is slower than fp32. Read from the
    kernel's CPU flags (Linux); False where they cannot be read.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """precision=auto|32|bf16|fp16 -> the dtype the generator runs in on `device`.

    auto: bf16 on a CPU with native bf16, fp32 on other CPUs and on MPS; on CUDA bf16 where the
    GPU supports it, else fp16.
    """
    if precision != "auto":
        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        return DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def parse_tile(tile: str | int) -> str | int:
    """tile= value -> "auto", "off" or a tile size in px (a multiple of 4, at least MIN_TILE)."""
    text = str(tile).strip().lower()
    if text in ("auto", "off"):
        return text
    try:
        size = int(text)
    except ValueError:
        raise ValueError(f"tile={tile!r}: use auto, off or a size in pixels") from None
    if size < MIN_TILE:
        raise ValueError(f"tile={size}: tiles must be at least {MIN_TILE} px")
    return size - size % 4


# ----------------------------------------------------------------------------------------------
# The generator's layers, run one by one


class _Upsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


class _RowFoldedConv(nn.Module):
    """A stride-1 convolution to a few channels (the 9x9 conv to RGB) in a form CPUs run fast.

    oneDNN vectorizes over output channels, so a conv to 3 channels runs at a fraction of the
    speed of the rest of the network. Here the kernel's rows become output channels (3 -> 27,
    kernel k x k -> 1 x k), and the k shifted row results are summed in fp32: the same sum in
    another order, at about 2-3x the speed.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        out_c, in_c, self.k, k_w = conv.weight.shape
        self.out_c = out_c
        rows = conv.weight.permute(0, 2, 1, 3).reshape(out_c * self.k, in_c, 1, k_w)
        self.weight = nn.Parameter(rows.contiguous(memory_format=torch.channels_last), False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.float(), False)

    @staticmethod
    def suits(op: nn.Module) -> bool:
        return (
            isinstance(op, nn.Conv2d)
            and op.out_channels <= 4
            and op.kernel_size[0] >= 5
            and op.stride == (1, 1)
            and op.dilation == (1, 1)
            and op.groups == 1
            and op.padding == (0, 0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = F.conv2d(x, self.weight)  # [B, out_c * k, H + k - 1, W']
        height = rows.shape[-2] - self.k + 1
        out = rows[:, 0 :: self.k, :height].float()
        for r in range(1, self.k):
            out += rows[:, r :: self.k, r : r + height]
        if self.bias is not None:
            out += self.bias.view(1, -1, 1, 1)
        return out


# norm -> its image-wide (mean, var); (norm, "film") -> a conditioned norm's (scale, shift).
Stats = dict[Any, tuple[torch.Tensor, torch.Tensor]]


def _needs_stats(op: nn.Module) -> bool:
    return isinstance(op, nn.InstanceNorm2d)


def _norm(norm: nn.Module, x: torch.Tensor, stats: Stats) -> torch.Tensor:
    """Apply a norm layer; an instance norm uses the image-wide (mean, var) in stats if there."""
    if not _needs_stats(norm):
        return norm(x)  # batch norm (eval: running statistics) or none: local
    film = stats.get((norm, "film"))  # a conditioned norm: the strength's scale and shift
    if norm not in stats:
        y = F.group_norm(x, x.shape[1], norm.weight, norm.bias, norm.eps)
        return y if film is None else torch.addcmul(film[1], y, film[0])
    mean, var = stats[norm]
    scale = torch.rsqrt(var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.float().view(1, -1, 1, 1)
    shift = -mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias.float().view(1, -1, 1, 1)
    if film is not None:  # (x·scale + shift)·f_scale + f_shift, folded into one affine map
        shift = shift * film[0].float() + film[1].float()
        scale = scale * film[0].float()
    # In fp32: x·scale and shift nearly cancel where the mean is large against the spread.
    return torch.addcmul(shift, x.float(), scale).to(x.dtype)


def _run(ops: list[nn.Module], x: torch.Tensor, stats: Stats) -> torch.Tensor:
    for op in ops:
        x = _norm(op, x, stats) if _needs_stats(op) else op(x)
    return x


def _chain(modules: nn.Sequential) -> list[nn.Module]:
    """Encoder or decoder as a flat list of ops: pad, conv, norm, ReLU, upsample."""
    ops: list[nn.Module] = []
    for module in modules:
        if isinstance(module, UpsampleConv):
            ops += [_Upsample(), *module.conv]
        elif isinstance(module, ConvLayer):
            ops += list(module)
        else:
            raise TypeError(f"tiled inference does not know the layer {type(module).__name__}")
    return ops


def _density(ops: list[nn.Module], start: int) -> int:
    """Pixels per 1/4-resolution pixel after `ops`, starting at `start` (4: full resolution)."""
    for op in ops:
        if isinstance(op, nn.Conv2d):
            start //= op.stride[0]
        elif isinstance(op, _Upsample):
            start *= 2
    return start


class _Moments:
    """Per-(image, channel) mean and biased variance over regions added one by one.

    Each region's mean and squared deviations are taken in fp32 and merged in fp64 (Chan et
    al.), which stays exact where the mean is large against the spread.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = self.m2 = torch.zeros(())

    def add(self, x: torch.Tensor) -> None:
        x = x.float()
        n = x.shape[-2] * x.shape[-1]
        if n == 0:
            return
        mean = x.mean((2, 3), keepdim=True)
        m2 = (x - mean).square_().sum((2, 3), keepdim=True).double()
        mean = mean.double()
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean.float(), (self.m2 / self.count).float()


@dataclass(frozen=True)
class _Tile:
    """A tile in 1/4-resolution pixels: the rows/cols it owns and those it reads (halo)."""

    r0: int
    r1: int
    c0: int
    c1: int
    a_r: int
    a_c: int
    b_r: int
    b_c: int

    def crop(self, src: torch.Tensor, unit: int) -> torch.Tensor:
        """The part of src (`unit` px per 1/4-res px) this tile reads."""
        return src[..., self.a_r * unit : self.b_r * unit, self.a_c * unit : self.b_c * unit]

    def region(self, whole: torch.Tensor) -> torch.Tensor:
        """The part of a whole 1/4-resolution tensor it owns."""
        return whole[..., self.r0 : self.r1, self.c0 : self.c1]

    def owned(self, y: torch.Tensor, unit: int) -> torch.Tensor:
        """The part of a result computed from crop() (`unit` px per 1/4-res px) it owns."""
        r, c = (self.r0 - self.a_r) * unit, (self.c0 - self.a_c) * unit
        return y[..., r : r + (self.r1 - self.r0) * unit, c : c + (self.c1 - self.c0) * unit]


def _spans(n: int, step: int) -> list[tuple[int, int]]:
    """range(n) in ceil(n/step) consecutive spans of nearly equal length (≥ step/2 if several)."""
    k = max(1, -(-n // step))
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


def _grid(hq: int, wq: int, step: int, halo: int) -> list[_Tile]:
    return [
        _Tile(
            r0,
            r1,
            c0,
            c1,
            max(r0 - halo, 0),
            max(c0 - halo, 0),
            min(r1 + halo, hq),
            min(c1 + halo, wq),
        )
        for r0, r1 in _spans(hq, step)
        for c0, c1 in _spans(wq, step)
    ]


def _ramp(n: int, lead: bool, trail: bool, device: torch.device) -> torch.Tensor:
    """Blend weights along one axis of an output tile with FEATHER px of overlap on each
    interior side: neighbours' ramps over the 2·FEATHER px they share sum to one."""
    w = torch.ones(n, device=device)
    ramp = (torch.arange(2 * FEATHER, device=device) + 0.5) / (2 * FEATHER)
    if lead:
        w[: 2 * FEATHER] = ramp
    if trail:
        w[-2 * FEATHER :] = ramp.flip(0)
    return w


# ----------------------------------------------------------------------------------------------


class Stylizer:
    """A generator ready for inference: content [B, 3, H, W] in [0, 1] (any device) ->
    stylized [B, 3, H, W] float32 in [0, 1] on the CPU.

    Runs in `dtype` with channels-last tensors on `device`; `tile` is "auto" (tiles above
    AUTO_TILE_PIXELS), "off", or a tile size in px (images longer than it are tiled).
    """

    def __init__(
        self,
        generator: Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        tile: str | int = "auto",
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.tile = parse_tile(tile)
        g = copy.deepcopy(generator).eval().requires_grad_(False)
        self.generator = g.to(device=self.device, dtype=dtype, memory_format=torch.channels_last)
        self.encoder = _chain(self.generator.encoder)
        self.blocks = list(self.generator.residual)
        self.decoder = _chain(self.generator.decoder)
        if self.device.type == "cpu":
            self.decoder = [
                _RowFoldedConv(op) if _RowFoldedConv.suits(op) else op for op in self.decoder
            ]
        if not all(isinstance(b, ResidualBlock) and len(b.body) == 4 for b in self.blocks):
            raise TypeError(
                "tiled inference expects residual blocks of (ConvLayer, pad, conv, norm)"
            )
        if _density(self.encoder, 4) != 1 or _density(self.decoder, 1) != 4:
            raise TypeError("tiled inference expects an encoder of stride 4 and a decoder of x4")

    def tile_size(self, height: int, width: int) -> int | None:
        """The tile size used for an image of this size, None if it runs whole."""
        if self.tile == "off":
            return None
        if self.tile == "auto":
            return DEFAULT_TILE if height * width > AUTO_TILE_PIXELS else None
        return self.tile if max(height, width) > self.tile else None

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        """strength: a conditioned generator's style strength in [0, 1] (default: its
        DEFAULT_STRENGTH); an error for other generators."""
        h, w = content.shape[-2:]
        tile = self.tile_size(h, w)
        film = self._film(strength, content.shape[0])
        if tile is None:
            out = torch.sigmoid(self._whole(self._prepare(content), film).float())
        else:
            out = self._tiled([self._prepare(content)], tile, film)
        return out[..., :h, :w].to("cpu", torch.float32).contiguous()

    def _film(self, strength: float | None, batch: int) -> Stats:
        """Every conditioned norm's (scale, shift) for this strength, keyed (norm, "film")."""
        if not self.generator.conditioned and strength is None:
            return {}
        emb = self.generator.strength_embedding(strength, batch)  # refuses it for plain ones
        return {
            (m, "film"): m.film_params(emb)
            for m in self.generator.modules()
            if isinstance(m, CondInstanceNorm)
        }

    def _prepare(self, content: torch.Tensor) -> torch.Tensor:
        x = self.generator.prepare(content.to(self.device, torch.float32))
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def _whole(self, x: torch.Tensor, film: Stats) -> torch.Tensor:
        x = _run(self.encoder, x, film)
        for block in self.blocks:
            x = x + _run(list(block.body[0]) + list(block.body[1:]), x, film)
        return _run(self.decoder, x, film)

    # -- tiled ---------------------------------------------------------------------------------

    def _tiled(self, holder: list[torch.Tensor], tile: int, film: Stats) -> torch.Tensor:
        """holder: [the prepared input], emptied once the encoder is done with it."""
        x = holder.pop()
        hq, wq = x.shape[-2] // 4, x.shape[-1] // 4
        step = tile // 4
        stats: Stats = dict(film)

        # Encoder: statistics of every norm before the last, then the trunk input.
        grid = _grid(hq, wq, step, ENCODER_HALO)
        split = _last_norm(self.encoder)
        for norm in filter(_needs_stats, self.encoder[:split]):
            stats[norm] = self._moments(x, 4, grid, self.encoder[: self.encoder.index(norm)], stats)
        trunk = self._store(x, 4, grid, self.encoder[:split], stats)
        del x
        self._pointwise(trunk, self.encoder[split:], stats)

        # Trunk: each block's hidden activation whole, its output added in place.
        grid = _grid(hq, wq, step, 1)
        for block in self.blocks:
            first, pad, conv, norm = block.body
            hidden = self._store(trunk, 1, grid, list(first)[:2], stats)
            self._pointwise(hidden, list(first)[2:], stats)
            if _needs_stats(norm):
                stats[norm] = self._moments(hidden, 1, grid, [pad, conv], stats)
            for t in grid:  # reads hidden only, so writing the trunk in place is safe
                y = _norm(norm, t.owned(conv(pad(t.crop(hidden, 1))), 1), stats)
                t.region(trunk).add_(y)
            del hidden

        # Decoder: statistics of each norm, then the output tiles, blended.
        grid = _grid(hq, wq, step, DECODER_HALO)
        for norm in filter(_needs_stats, self.decoder):
            stats[norm] = self._moments(
                trunk, 1, grid, self.decoder[: self.decoder.index(norm)], stats
            )
        out = torch.zeros(trunk.shape[0], 3, hq * 4, wq * 4, device=trunk.device)
        for t in grid:
            y = torch.sigmoid(_run(self.decoder, t.crop(trunk, 1), stats).float())
            lead, trail = t.r0 > 0, t.r1 < hq
            left, right = t.c0 > 0, t.c1 < wq
            r0, r1 = 4 * t.r0 - FEATHER * lead, 4 * t.r1 + FEATHER * trail
            c0, c1 = 4 * t.c0 - FEATHER * left, 4 * t.c1 + FEATHER * right
            part = y[..., r0 - 4 * t.a_r : r1 - 4 * t.a_r, c0 - 4 * t.a_c : c1 - 4 * t.a_c]
            weight = _ramp(r1 - r0, lead, trail, out.device)[:, None] * _ramp(
                c1 - c0, left, right, out.device
            )
            out[..., r0:r1, c0:c1].addcmul_(part, weight)
        return out

    def _moments(
        self, src: torch.Tensor, unit: int, grid: list[_Tile], ops: list[nn.Module], stats: Stats
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-wide mean and variance of the activation that `ops` compute from src."""
        density = _density(ops, unit)
        moments = _Moments()
        for t in grid:
            moments.add(t.owned(_run(ops, t.crop(src, unit), stats), density))
        return moments.result()

    def _store(
        self, src: torch.Tensor, unit: int, grid: list[_Tile], ops: list[nn.Module], stats: Stats
    ) -> torch.Tensor:
        """The 1/4-resolution activation that `ops` compute from src, assembled whole."""
        if _density(ops, unit) != 1:
            raise AssertionError("only 1/4-resolution activations are stored whole")
        hq, wq = grid[-1].r1, grid[-1].c1
        buffer = None
        for t in grid:
            y = t.owned(_run(ops, t.crop(src, unit), stats), 1)
            if buffer is None:
                buffer = y.new_empty((y.shape[0], y.shape[1], hq, wq)).contiguous(
                    memory_format=torch.channels_last
                )
            t.region(buffer)[...] = y
        return buffer

    def _pointwise(self, buffer: torch.Tensor, ops: list[nn.Module], stats: Stats) -> None:
        """Apply pointwise ops (a norm with the buffer's own statistics, ReLU) in place."""
        rows = max(1, _CHUNK_ELEMENTS // (buffer.shape[0] * buffer.shape[1] * buffer.shape[3]))
        chunks = [buffer[..., r : r + rows, :] for r in range(0, buffer.shape[-2], rows)]
        for op in filter(_needs_stats, ops):
            moments = _Moments()
            for chunk in chunks:
                moments.add(chunk)
            stats[op] = moments.result()
        for chunk in chunks:
            chunk.copy_(_run(ops, chunk, stats))


def _last_norm(ops: list[nn.Module]) -> int:
    """Index of the last norm op: the ops from there on are pointwise (norm, ReLU)."""
    for i in range(len(ops) - 1, -1, -1):
        if isinstance(ops[i], nn.InstanceNorm2d | nn.BatchNorm2d | nn.Identity):
            return i
    raise TypeError("the encoder has no norm layer")
