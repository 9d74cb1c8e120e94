"""Inference: the fast path computes what Generator.forward computes, tiles with whole-image
statistics match the untiled output, bf16 stays close to fp32, and precision=auto picks right."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_stylizer import devices
from gan_stylizer.config.validate import parse_tile
from gan_stylizer.devices import resolve_dtype
from gan_stylizer.inference.onepass import AUTO_TILE_PIXELS, DEFAULT_TILE, OnePass
from gan_stylizer.models.generator import NORMS, Generator


def make_generator(norm: str = "instance", channels: int = 8, n_residual: int = 2) -> Generator:
    torch.manual_seed(0)
    generator = Generator(channels=channels, n_residual=n_residual, norm=norm).eval()
    for module in generator.modules():  # eval-mode batch norm with non-trivial statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return generator


def photo(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth gradients plus texture: structure at every scale, like a photo."""
    gen = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, height)[:, None]
    xx = torch.linspace(0, 1, width)[None, :]
    phase = torch.rand(batch, 3, 1, 1, generator=gen) * 6
    smooth = 0.5 + 0.4 * torch.sin(7 * xx + phase) * torch.cos(5 * yy + 2 * phase)
    return (smooth + 0.1 * torch.rand(batch, 3, height, width, generator=gen)).clamp(0, 1)


def mad255(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item() * 255


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("size", [(1, 1), (5, 300), (37, 53)])
def test_whole_image_path_is_generator_forward(norm, size):
    generator = make_generator(norm)
    content = photo(2, *size)
    with torch.no_grad():
        expected = generator(content)
    stylized = OnePass(generator, tile="off")(content)
    assert stylized.shape == content.shape and stylized.dtype == torch.float32
    assert (stylized - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("norm", NORMS)
def test_tiled_output_matches_untiled(norm):
    generator = make_generator(norm)
    content = photo(2, 150, 230)  # 3 x 4 tiles of 64 px, odd size: padded inside
    whole = OnePass(generator, tile="off")(content)
    tiler = OnePass(generator, tile=64)
    assert tiler.tile_size(150, 230) == 64
    tiled = tiler(content)
    assert tiled.shape == whole.shape
    assert mad255(tiled, whole) <= 2.0  # the bound
    # Whole-image statistics and enough context per tile: equal up to float rounding.
    assert (tiled - whole).abs().max().item() < 1e-4


def test_tiles_normalized_on_their_own_would_fail_the_bound():
    # What the test above guards against: each tile run through the generator by itself, with
    # its own instance-norm statistics, is visibly off (and shows seams).
    generator = make_generator()
    content = photo(1, 128, 192)
    whole = OnePass(generator, tile="off")(content)
    naive = torch.zeros_like(whole)
    with torch.no_grad():
        for r in range(0, 128, 64):
            for c in range(0, 192, 64):
                naive[..., r : r + 64, c : c + 64] = generator(content[..., r : r + 64, c : c + 64])
    assert mad255(naive, whole) > 2.0


def test_tiled_bf16_matches_untiled_bf16():
    generator = make_generator()
    content = photo(1, 140, 200, seed=1)
    whole = OnePass(generator, dtype=torch.bfloat16, tile="off")(content)
    tiled = OnePass(generator, dtype=torch.bfloat16, tile=64)(content)
    assert mad255(tiled, whole) <= 2.0


def test_tiling_treats_each_image_of_a_batch_alone():
    generator = make_generator()
    content = photo(2, 100, 150, seed=2)
    tiler = OnePass(generator, tile=64)
    both = tiler(content)
    for i in range(2):
        assert (both[i : i + 1] - tiler(content[i : i + 1])).abs().max().item() < 1e-5


def test_bf16_channels_last_is_close_to_fp32():
    generator = make_generator(channels=32, n_residual=5)  # the default network
    content = photo(1, 96, 128, seed=3)
    fp32 = OnePass(generator, dtype=torch.float32, tile="off")(content)
    bf16 = OnePass(generator, dtype=torch.bfloat16, tile="off")
    assert next(bf16.generator.parameters()).dtype == torch.bfloat16
    out = bf16(content)
    assert out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert mad255(out, fp32) <= 1.0  # the bound for the default path
    assert mad255(out, fp32) > 0  # it did run in bf16


def test_precision_auto_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert resolve_dtype("auto", torch.device("cuda")) == dtype
    assert resolve_dtype("32", cpu) == torch.float32
    assert resolve_dtype("fp16", cpu) == torch.float16
    with pytest.raises(ValueError, match="precision"):
        resolve_dtype("fp8", cpu)


def test_native_bf16_detection_reads_the_cpu_flags(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu avx512f avx512_bf16", True), ("fpu avx2", False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(
            builtins,
            "open",
            lambda p, *a, info=info, **k: real_open(info if p == "/proc/cpuinfo" else p, *a, **k),
        )
        assert devices.cpu_has_native_bf16() is expected


def test_tile_option():
    assert parse_tile("auto") == "auto" and parse_tile("OFF") == "off"
    assert parse_tile(512) == 512 and parse_tile("130") == 128  # a multiple of 4
    for bad in ("63", "big", "-4"):
        with pytest.raises(ValueError, match="tile"):
            parse_tile(bad)
    generator = make_generator(channels=4, n_residual=0)
    auto = OnePass(generator)
    side = math.isqrt(AUTO_TILE_PIXELS)
    assert auto.tile_size(side, side) is None
    assert auto.tile_size(2160, 3840) == DEFAULT_TILE
    fixed = OnePass(generator, tile=128)
    assert fixed.tile_size(128, 100) is None and fixed.tile_size(129, 100) == 128
    assert OnePass(generator, tile="off").tile_size(8000, 8000) is None


_PEAK_CHILD = """
import sys, torch
from gan_stylizer.inference.onepass import OnePass
from gan_stylizer.models.generator import Generator

def high_water_mark():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmHWM:'))

torch.manual_seed(0)
stylizer = OnePass(Generator(n_residual=1).eval(), tile=sys.argv[1])
content = torch.rand(1, 3, 768, 1024)
stylizer(content[..., :64, :64])  # allocator and oneDNN warmed up
before = high_water_mark()
stylizer(content)
print(high_water_mark() - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_tiled_inference_memory_is_bounded():
    # The untiled network holds several 32-channel full-resolution activations (about 48x the
    # input's 9 MB here); tiled, only 1/4-resolution buffers, the input and the output do.
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_CHILD, "128"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    input_bytes = 3 * 768 * 1024 * 4
    assert int(proc.stdout.split()[-1]) < 16 * input_bytes


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 12)])
def test_upsampling_conv_at_low_resolution_equals_upsample_pad_conv(size):
    from torch import nn

    from gan_stylizer.inference.layers import SubpixelConv, Upsample, fold_upsampling

    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, bias=True)
    ops = [Upsample(), nn.ReflectionPad2d(1), conv, nn.ReLU()]
    folded = fold_upsampling(ops)
    assert isinstance(folded[0], SubpixelConv) and len(folded) == 2
    x = torch.randn(2, 6, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = conv(ops[1](ops[0](x)))
        got = folded[0](x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-5
    assert any(isinstance(op, SubpixelConv) for op in OnePass(make_generator()).decoder)


def test_each_tiled_pass_cuts_its_tiles_with_the_halo_its_own_ops_need():
    from torch import nn

    from gan_stylizer.inference.layers import FEATHER, halo, last_norm, needs_stats

    tiler = OnePass(Generator().eval())
    enc, dec = tiler.encoder, tiler.decoder
    # Encoder: the 9x9 conv reaches 4 px (1 at 1/4 res); then a stride-2 conv 3 px at 1/2 res;
    # the trunk input 2 px at 1/4 res. Decoder: 1 and 3 px (1 at 1/4 res) for its norms' passes,
    # 7 px and the blend's FEATHER for the output (4).
    assert [halo(enc[: enc.index(n)], 4) for n in filter(needs_stats, enc)] == [1, 2, 2]
    assert halo(enc[: last_norm(enc)], 4) == 2
    assert [halo(dec[: dec.index(n)], 1) for n in filter(needs_stats, dec)] == [1, 1]
    assert halo(dec, 1, FEATHER) == 4
    assert halo([nn.ReflectionPad2d(1), nn.Conv2d(3, 3, 3), nn.GELU()], 1, fallback=7) == 7
