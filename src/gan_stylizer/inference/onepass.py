"""One-pass inference with a trained generator: fast precision, and tiles for any image size.

`OnePass` runs the generator's own modules (the arithmetic of `Generator.forward`) itself, so
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
   normalized with that buffer's statistics; the second convolution runs over that buffer in
   place, in whole-width strips from the top (each keeps aside the one row its successor reads
   as it was), gathering its statistics; its output, normalized, is then added to the trunk.
3. Decoder: one statistics pass per norm layer, then the output, tile by tile.

Every tile is cut with more context (a halo) than the layers it goes through can see, so each
pixel it keeps is the pixel the untiled network computes: tiled output equals untiled output up
to floating-point rounding. Neighbouring output tiles overlap by 2·FEATHER pixels and are blended
with linear weights that sum to one, which hides what rounding differences remain (bf16).
Cost per pixel: about that of an untiled 1024² pass; memory: the input, the output, two trunk
buffers (about 2x16 bytes per input pixel in bf16) and one tile's activations.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from gan_stylizer.config.validate import parse_tile
from gan_stylizer.inference.layers import (
    CHUNK_ELEMENTS,
    DECODER_HALO,
    ENCODER_HALO,
    FEATHER,
    STRIP_ELEMENTS,
    Moments,
    RowFoldedConv,
    Stats,
    Tile,
    apply_norm,
    chain,
    density,
    fold_upsampling,
    halo,
    last_norm,
    needs_stats,
    ramp,
    run_ops,
    spans,
    tile_grid,
)
from gan_stylizer.models.generator import (
    CondInstanceNorm,
    Generator,
    ResidualBlock,
)

# tile=auto tiles images with more pixels than this (1920x1080 still runs whole: about 1 GB
# peak in fp32); a tile is DEFAULT_TILE px square (its activations: about 40 MB per layer).
AUTO_TILE_PIXELS = 2**21
DEFAULT_TILE = 512
# Images (or video frames) of equal size are stylized together only up to this many pixels in
# all: a larger batch is slower per image than its images one by one, as its activations leave
# the caches (720p frames, bf16 on a 2-core AMX Xeon: 0.34 s a frame alone, 0.55 in twos, 0.91
# in fours; 512²: 0.092 alone, 0.085 in twos, 0.148 in fours).
BATCH_PIXELS = 2**19


def batch_limit(pixels: int, batch_size: int) -> int:
    """How many images of `pixels` pixels each to stylize together: at most batch_size and
    BATCH_PIXELS in all, and at least one."""
    return max(1, min(batch_size, BATCH_PIXELS // pixels))


# ----------------------------------------------------------------------------------------------
# The generator's layers, run one by one


# ----------------------------------------------------------------------------------------------


class OnePass:
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
        self.encoder = chain(self.generator.encoder)
        self.blocks = list(self.generator.residual)
        self.decoder = chain(self.generator.decoder)
        if self.device.type == "cpu":
            self.decoder = [
                RowFoldedConv(op) if RowFoldedConv.suits(op) else op
                for op in fold_upsampling(self.decoder)
            ]
        if not all(isinstance(b, ResidualBlock) and len(b.body) == 4 for b in self.blocks):
            raise TypeError(
                "tiled inference expects residual blocks of (ConvLayer, pad, conv, norm)"
            )
        if density(self.encoder, 4) != 1 or density(self.decoder, 1) != 4:
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
        x = run_ops(self.encoder, x, film)
        for block in self.blocks:
            x = x + run_ops(list(block.body[0]) + list(block.body[1:]), x, film)
        return run_ops(self.decoder, x, film)

    # -- tiled ---------------------------------------------------------------------------------

    def _tiled(self, holder: list[torch.Tensor], tile: int, film: Stats) -> torch.Tensor:
        """holder: [the prepared input], emptied once the encoder is done with it."""
        x = holder.pop()
        hq, wq = x.shape[-2] // 4, x.shape[-1] // 4
        step = tile // 4
        stats: Stats = dict(film)

        # Encoder: statistics of every norm before the last, then the trunk input. Each pass
        # cuts its tiles with the halo its own ops need.
        def grid(ops: list[nn.Module], unit: int, margin: int, fallback: int) -> list[Tile]:
            return tile_grid(hq, wq, step, halo(ops, unit, margin, fallback))

        split = last_norm(self.encoder)
        for norm in filter(needs_stats, self.encoder[:split]):
            ops = self.encoder[: self.encoder.index(norm)]
            stats[norm] = self._moments(x, 4, grid(ops, 4, 0, ENCODER_HALO), ops, stats)
        ops = self.encoder[:split]
        trunk = self._store(x, 4, grid(ops, 4, 0, ENCODER_HALO), ops, stats, self.encoder[split])
        del x
        self._pointwise(trunk, self.encoder[split:], stats)

        # Trunk, in whole-width strips: each block's hidden activation whole, its second
        # convolution written over it in place, then added to the trunk normalized.
        for block in self.blocks:
            first, pad, conv, norm = block.body
            ops = list(first)
            hidden = self._convolve(trunk, ops[:2], stats, ops[2])
            self._pointwise(hidden, ops[2:], stats)
            self._convolve(hidden, [pad, conv], stats, norm, in_place=True)
            for rows, out in zip(chunks(hidden), chunks(trunk), strict=True):
                out.add_(apply_norm(norm, rows, stats))
            del hidden, rows, out  # the views too: they hold the whole buffer

        # Decoder: statistics of each norm, then the output tiles, blended.
        for norm in filter(needs_stats, self.decoder):
            ops = self.decoder[: self.decoder.index(norm)]
            stats[norm] = self._moments(trunk, 1, grid(ops, 1, 0, DECODER_HALO), ops, stats)
        out = torch.zeros(trunk.shape[0], 3, hq * 4, wq * 4, device=trunk.device)
        for t in grid(self.decoder, 1, FEATHER, DECODER_HALO):
            y = torch.sigmoid(run_ops(self.decoder, t.crop(trunk, 1), stats).float())
            lead, trail = t.r0 > 0, t.r1 < hq
            left, right = t.c0 > 0, t.c1 < wq
            r0, r1 = 4 * t.r0 - FEATHER * lead, 4 * t.r1 + FEATHER * trail
            c0, c1 = 4 * t.c0 - FEATHER * left, 4 * t.c1 + FEATHER * right
            part = y[..., r0 - 4 * t.a_r : r1 - 4 * t.a_r, c0 - 4 * t.a_c : c1 - 4 * t.a_c]
            weight = ramp(r1 - r0, lead, trail, out.device)[:, None] * ramp(
                c1 - c0, left, right, out.device
            )
            out[..., r0:r1, c0:c1].addcmul_(part, weight)
        return out

    def _moments(
        self, src: torch.Tensor, unit: int, grid: list[Tile], ops: list[nn.Module], stats: Stats
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-wide mean and variance of the activation that `ops` compute from src."""
        unit_out = density(ops, unit)
        moments = Moments()
        for t in grid:
            moments.add_(t.owned(run_ops(ops, t.crop(src, unit), stats), unit_out))
        return moments.result()

    def _store(
        self,
        src: torch.Tensor,
        unit: int,
        grid: list[Tile],
        ops: list[nn.Module],
        stats: Stats,
        norm: nn.Module | None = None,
    ) -> torch.Tensor:
        """The 1/4-resolution activation that `ops` compute from src, assembled whole; with
        `norm` (the op that follows, if it needs them), its image-wide statistics too."""
        if density(ops, unit) != 1:
            raise AssertionError("only 1/4-resolution activations are stored whole")
        hq, wq = grid[-1].r1, grid[-1].c1
        moments = Moments() if norm is not None and needs_stats(norm) else None
        buffer = None
        for t in grid:
            y = t.owned(run_ops(ops, t.crop(src, unit), stats), 1)
            if buffer is None:
                buffer = y.new_empty((y.shape[0], y.shape[1], hq, wq)).contiguous(
                    memory_format=torch.channels_last
                )
            t.region(buffer)[...] = y
            if moments is not None:
                moments.add_(y)
        if moments is not None:
            stats[norm] = moments.result()
        return buffer

    def _convolve(
        self,
        src: torch.Tensor,
        ops: list[nn.Module],
        stats: Stats,
        norm: nn.Module,
        in_place: bool = False,
    ) -> torch.Tensor:
        """ops(src), for ops that keep the resolution and read one pixel around each output
        (reflection pad 1, 3x3 conv), in whole-width strips from the top, with the statistics
        of `norm`, the op that follows, if it needs them.

        in_place: written over src, whose rows a later strip still reads: each strip reads the
        row above it as it was, kept aside before its strip overwrote it. One convolution pass
        and no second buffer, where a statistics pass and an output pass would take two."""
        if density(ops, 1) != 1 or not all(
            isinstance(op, nn.Conv2d | nn.ReflectionPad2d) for op in ops
        ):
            raise AssertionError("strips expect a reflection pad 1 and a 3x3 convolution")
        batch, channels, height, width = src.shape
        rows = max(1, STRIP_ELEMENTS // (batch * channels * width))
        moments = Moments() if needs_stats(norm) else None
        dst = src if in_place else None
        above = None  # in place: the row above the strip, as it was
        for r0, r1 in spans(height, rows):
            top = 1 if r0 > 0 else 0
            crop = src[..., r0 - top * (not in_place) : min(r1 + 1, height), :]
            if above is not None:
                crop = torch.cat([above, crop], dim=-2)
            y = run_ops(ops, crop, stats)[..., top : top + r1 - r0, :]
            if dst is None:
                dst = y.new_empty((batch, y.shape[1], height, width)).contiguous(
                    memory_format=torch.channels_last
                )
            if in_place:
                above = src[..., r1 - 1 : r1, :].clone()
            dst[..., r0:r1, :] = y
            if moments is not None:
                moments.add_(y)
        if moments is not None:
            stats[norm] = moments.result()
        return dst

    def _pointwise(self, buffer: torch.Tensor, ops: list[nn.Module], stats: Stats) -> None:
        """Apply pointwise ops (a norm with the buffer's statistics, gathered as it was
        written, and ReLU) in place."""
        if any(needs_stats(op) and op not in stats for op in ops):
            raise AssertionError("a norm's image-wide statistics were not gathered")
        for chunk in chunks(buffer):
            chunk.copy_(run_ops(ops, chunk, stats))


def chunks(buffer: torch.Tensor) -> list[torch.Tensor]:
    """A whole 1/4-resolution buffer as views of whole-width row strips, CHUNK_ELEMENTS each."""
    rows = max(1, CHUNK_ELEMENTS // (buffer.shape[0] * buffer.shape[1] * buffer.shape[3]))
    return [buffer[..., r : r + rows, :] for r in range(0, buffer.shape[-2], rows)]
