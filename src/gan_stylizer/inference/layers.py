"""The pieces of tiled one-pass inference: the generator's layers run one by one with
image-wide instance-norm statistics, the tile grid with halos, feathered blending, and
fast forms of the decoder's upsampling convolutions and of its last convolution. See
gan_stylizer.inference.onepass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_stylizer.models.generator import ConvLayer, UpsampleConv

# Halos in 1/4-resolution pixels, where `halo` cannot follow an op: the encoder's output pixel
# sees 7 input pixels each way (9x9 conv, then two stride-2 3x3 convs), so 2 (8 px) would do;
# in the decoder a padding error at a tile's edge reaches 7 output pixels in (3x3 at 1/2, 3x3
# and 9x9 at full resolution), and 4 (16 px) leaves room for the FEATHER px each tile keeps
# beyond its own area.
ENCODER_HALO = 3


DECODER_HALO = 4


FEATHER = 8  # output px each side of a seam over which neighbouring tiles are blended


CHUNK_ELEMENTS = 2**22  # elements per chunk when a whole buffer is normalized in place


STRIP_ELEMENTS = 2**22  # elements per strip of an in-place convolution (its input: 16 MB)


class Upsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


class RowFoldedConv(nn.Module):
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


class SubpixelConv(nn.Module):
    """Nearest ×2 upsampling, reflection pad 1 and a 3x3 convolution, computed at the low
    resolution: the same sums in another order, with 16 kernel taps per 2x2 output pixels
    instead of 36, and no upsampled copy of the input.

    Upsampled by 2, output pixel 2i+a (a in {0, 1}) of a 3x3 conv reads rows 2i+a-1 .. 2i+a+1,
    which are input rows i-1, i, i (a = 0) or i, i, i+1 (a = 1): a 2-tap kernel on the input,
    with the taps that read the same row summed. So each of the four output phases (a, b) is a
    2x2 conv of the input, and reflecting the upsampled image by one pixel is replicating the
    input by one pixel.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        # Phase 0 reads input rows (i-1, i), phase 1 reads (i, i+1): each sums kernel rows into
        # its two taps; columns likewise. Phase (a, b)'s 2x2 kernel is P_a · W · P_bᵀ.
        fold = torch.tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], dtype=torch.float64)
        w = conv.weight.detach().double()
        self.weights = nn.ParameterList(
            nn.Parameter(
                torch.einsum("ik,ockl,jl->ocij", fold[a], w, fold[b])
                .to(conv.weight.dtype)
                .contiguous(memory_format=torch.channels_last),
                False,
            )
            for a in range(2)
            for b in range(2)
        )
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), False)

    @staticmethod
    def suits(up: nn.Module, pad: nn.Module, conv: nn.Module) -> bool:
        return (
            isinstance(up, Upsample)
            and isinstance(pad, nn.ReflectionPad2d)
            and tuple(pad.padding) == (1, 1, 1, 1)
            and isinstance(conv, nn.Conv2d)
            and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1)
            and conv.padding == (0, 0)
            and conv.dilation == (1, 1)
            and conv.groups == 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
        shape = (x.shape[0], self.weights[0].shape[0], 2 * h, 2 * w)
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        for index, weight in enumerate(self.weights):
            a, b = divmod(index, 2)
            out[..., a::2, b::2] = F.conv2d(
                xp[..., a : a + h + 1, b : b + w + 1], weight, self.bias
            )
        return out


def fold_upsampling(ops: list[nn.Module]) -> list[nn.Module]:
    """ops with every (Upsample, ReflectionPad2d(1), 3x3 Conv2d) replaced by a SubpixelConv."""
    folded: list[nn.Module] = []
    i = 0
    while i < len(ops):
        if i + 2 < len(ops) and SubpixelConv.suits(*ops[i : i + 3]):
            folded.append(SubpixelConv(ops[i + 2]))
            i += 3
        else:
            folded.append(ops[i])
            i += 1
    return folded


# norm -> its image-wide (mean, var); (norm, "film") -> a conditioned norm's (scale, shift).
Stats = dict[Any, tuple[torch.Tensor, torch.Tensor]]


def needs_stats(op: nn.Module) -> bool:
    return isinstance(op, nn.InstanceNorm2d)


def apply_norm(norm: nn.Module, x: torch.Tensor, stats: Stats) -> torch.Tensor:
    """Apply a norm layer; an instance norm uses the image-wide (mean, var) in stats if there."""
    if not needs_stats(norm):
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


def run_ops(ops: list[nn.Module], x: torch.Tensor, stats: Stats) -> torch.Tensor:
    for op in ops:
        x = apply_norm(op, x, stats) if needs_stats(op) else op(x)
    return x


def chain(modules: nn.Sequential) -> list[nn.Module]:
    """Encoder or decoder as a flat list of ops: pad, conv, norm, ReLU, upsample."""
    ops: list[nn.Module] = []
    for module in modules:
        if isinstance(module, UpsampleConv):
            ops += [Upsample(), *module.conv]
        elif isinstance(module, ConvLayer):
            ops += list(module)
        else:
            raise TypeError(f"tiled inference does not know the layer {type(module).__name__}")
    return ops


def density(ops: list[nn.Module], start: int) -> int:
    """Pixels per 1/4-resolution pixel after `ops`, starting at `start` (4: full resolution)."""
    for op in ops:
        if isinstance(op, nn.Conv2d):
            start //= op.stride[0]
        elif isinstance(op, Upsample | SubpixelConv):
            start *= 2
    return start


class Moments:
    """Per-(image, channel) mean and biased variance over regions added one by one.

    Each region's mean and squared deviations are taken in fp32 and merged in fp64 (Chan et
    al.), which stays exact where the mean is large against the spread.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = self.m2 = torch.zeros(())

    def add_(self, x: torch.Tensor) -> None:
        """Add a region; x is a temporary, and it is overwritten where it is dense.

        The sums run on a dense channels-last form of x: on a tile's owned part, a strided
        view, PyTorch's CPU reductions run at a third of the speed (and the copy costs less)."""
        scratch = x.float().contiguous(memory_format=torch.channels_last)
        n = x.shape[-2] * x.shape[-1]
        if n == 0:
            return
        mean = scratch.mean((2, 3), keepdim=True)
        m2 = scratch.sub_(mean).square_().sum((2, 3), keepdim=True).double()
        mean = mean.double()
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean.float(), (self.m2 / self.count).float()


@dataclass(frozen=True)
class Tile:
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


def spans(n: int, step: int) -> list[tuple[int, int]]:
    """range(n) in ceil(n/step) consecutive spans of nearly equal length (≥ step/2 if several)."""
    k = max(1, -(-n // step))
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


PADS = (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d, nn.ConstantPad2d)
POINTWISE = (
    nn.InstanceNorm2d,
    nn.BatchNorm2d,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
)


def halo(ops: list[nn.Module], unit: int, margin: int = 0, fallback: int = DECODER_HALO) -> int:
    """The halo (1/4-resolution px) a tile needs so that `ops`, run on its crop from src with
    `unit` px per 1/4-res px, compute every pixel it keeps (and `margin` output px beyond) as
    on the whole image: how far in from a crop's edge the wrong values that padding puts there
    reach. `fallback` for an op it cannot follow."""
    reach = 0  # wrong pixels at an edge of the current activation
    for op in ops:
        if isinstance(op, PADS):
            reach += max(op.padding)
        elif isinstance(op, nn.Conv2d) and op.dilation == (1, 1) and op.padding != "same":
            reach = -(-(reach + op.padding[0]) // op.stride[0])
        elif isinstance(op, SubpixelConv):  # up x2, pad 1, 3x3 conv
            reach = 2 * reach + 1
        elif isinstance(op, Upsample):
            reach *= 2
        elif not isinstance(op, (RowFoldedConv, *POINTWISE)):  # RowFoldedConv: unpadded, stride 1
            return fallback
    return -(-(reach + margin) // density(ops, unit))


def tile_grid(hq: int, wq: int, step: int, halo: int) -> list[Tile]:
    return [
        Tile(
            r0,
            r1,
            c0,
            c1,
            max(r0 - halo, 0),
            max(c0 - halo, 0),
            min(r1 + halo, hq),
            min(c1 + halo, wq),
        )
        for r0, r1 in spans(hq, step)
        for c0, c1 in spans(wq, step)
    ]


def ramp(n: int, lead: bool, trail: bool, device: torch.device) -> torch.Tensor:
    """Blend weights along one axis of an output tile with FEATHER px of overlap on each
    interior side: neighbours' ramps over the 2·FEATHER px they share sum to one."""
    w = torch.ones(n, device=device)
    ramp = (torch.arange(2 * FEATHER, device=device) + 0.5) / (2 * FEATHER)
    if lead:
        w[: 2 * FEATHER] = ramp
    if trail:
        w[-2 * FEATHER :] = ramp.flip(0)
    return w


def last_norm(ops: list[nn.Module]) -> int:
    """Index of the last norm op: the ops from there on are pointwise (norm, ReLU)."""
    for i in range(len(ops) - 1, -1, -1):
        if isinstance(ops[i], nn.InstanceNorm2d | nn.BatchNorm2d | nn.Identity):
            return i
    raise TypeError("the encoder has no norm layer")
