"""Which engine runs the one pass (`backend=`): PyTorch, or ONNX Runtime on an ONNX export of
the generator that is made once per generator and kept in a cache.

- `torch`: `OnePass` (onepass.py): fp32, bf16 or fp16, channels-last, and tiles with
  image-wide instance norms.
- `onnxruntime`: fp32 on the CPU, for images that run whole. An image that tiles (above 2 MP
  with tile=auto) still goes through `OnePass` in fp32, since only it keeps each norm's
  statistics image-wide across the tiles.
- `auto`: torch, by every machine measured so far (docs/performance.md). On a CPU with native
  bf16 (a Xeon with AMX), torch's bf16 path was 5.9x faster than ONNX Runtime at 512² and 3.5x
  at 1024². In two runs on a 2-core AVX2-only AMD EPYC, ONNX Runtime took 1.20x and 1.21x
  torch's time at 512², and 0.92x and 1.05x at 1024².

The cache: `$GAN_STYLIZER_CACHE/onnx/`, else `$XDG_CACHE_HOME/gan-stylizer/onnx/`, else
`~/.cache/gan-stylizer/onnx/`. A file's name holds a digest of what its graph depends on
(generator_digest); a new export is checked against PyTorch, and a damaged file is made again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from gan_stylizer.config.schema import BACKENDS
from gan_stylizer.devices import cpu_has_native_bf16, resolve_dtype
from gan_stylizer.errors import CheckpointError, ConfigError, reason
from gan_stylizer.inference.export import EXPORT_VERSION, ONNX_OPSET, export_generator
from gan_stylizer.inference.exported import INSTALL_ONNX, difference, load_exported
from gan_stylizer.inference.onepass import OnePass
from gan_stylizer.io.atomic import sweep
from gan_stylizer.io.names import safe_component
from gan_stylizer.models.generator import Generator

PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
EXPORT_TOLERANCE = 1e-3  # a fresh export must match PyTorch this closely (as scripts/export.py)


def cache_dir() -> Path:
    """Where exported graphs are kept (see the module's docstring)."""
    if os.environ.get("GAN_STYLIZER_CACHE"):
        return Path(os.environ["GAN_STYLIZER_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "gan-stylizer"
    return Path.home() / ".cache" / "gan-stylizer"


def generator_digest(generator: Generator) -> str:
    """A digest of what the exported graph depends on: the generator's configuration and
    weights (as fp32), this package's export code (EXPORT_VERSION), the ONNX opset, and the
    versions of torch and onnxscript, which write the graph."""
    h = hashlib.sha256()
    h.update(json.dumps(dict(generator.config), sort_keys=True).encode())
    h.update(f"export {EXPORT_VERSION}, opset {ONNX_OPSET}, torch {torch.__version__}".encode())
    h.update(f"onnxscript {_version('onnxscript')}".encode())
    for name, tensor in sorted(generator.state_dict().items()):
        value = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name} {tuple(value.shape)}".encode())
        h.update(value.numpy().tobytes())
    return h.hexdigest()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cached_export(generator: Generator, label: str, cache: Path | None = None) -> Path:
    """The generator's ONNX export in the cache; made now, and checked against PyTorch, if it
    is not there."""
    folder = (cache if cache is not None else cache_dir()) / "onnx"
    path = folder / f"{safe_component(label)}-{generator_digest(generator)[:16]}.onnx"
    if path.is_file():
        return path
    _need("onnx", "onnxscript")  # the exporter's
    try:
        sweep(folder)  # what an export killed half-way left behind
        export_generator(generator, "onnx", path, label, source="backend=onnxruntime")
    except OSError as err:
        raise ConfigError(
            f"backend=onnxruntime: cannot write the ONNX cache {folder}: {reason(err)} "
            "(set GAN_STYLIZER_CACHE to a writable folder)"
        ) from None
    diff = difference(load_exported(path, torch.device("cpu"))[0], generator)
    if not diff <= EXPORT_TOLERANCE:  # NaN fails too
        path.unlink(missing_ok=True)
        raise ConfigError(
            f"backend=onnxruntime: the ONNX export differs from PyTorch by {diff:.3g}; "
            "use backend=torch"
        )
    return path


class OrtPass:
    """ONNX Runtime (fp32, CPU) for images that run whole; `OnePass` in fp32 for those that
    tile. Called as OnePass is, with one strength (a number, or None: the model's default) for
    the whole batch: (content [B, 3, H, W] in [0, 1], strength) -> float32 on the CPU."""

    def __init__(
        self, generator: Generator, label: str, tile: str | int = "auto", cache: Path | None = None
    ) -> None:
        self.tiled = OnePass(generator, "cpu", torch.float32, tile)
        path = cached_export(generator, label, cache)
        try:
            self.whole, _ = load_exported(path, torch.device("cpu"))
        except CheckpointError:  # a damaged cached file (a disk error, an edit): made again
            try:
                path.unlink(missing_ok=True)
                path = cached_export(generator, label, cache)
                self.whole, _ = load_exported(path, torch.device("cpu"))
            except (CheckpointError, OSError) as err:
                raise ConfigError(
                    f"backend=onnxruntime: {path}: {reason(err)} "
                    "(delete it, or set GAN_STYLIZER_CACHE to another folder)"
                ) from None
        self.path = path

    def __call__(self, content: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        h, w = content.shape[-2:]
        if self.tiled.tile_size(h, w) is not None:
            return self.tiled(content, strength)
        return self.whole(content, strength)


def build(
    generator: Generator,
    label: str,
    device: torch.device,
    precision: str = "auto",
    tile: str | int = "auto",
    backend: str = "auto",
    cache: Path | None = None,
) -> tuple[Callable, str]:
    """(the one-pass engine, one line saying what runs: engine, precision, device, and why).
    backend=onnxruntime runs on the CPU whatever `device` is: config.validate.check_backend
    refuses another device when it is asked for by name."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "onnxruntime":
        _need("onnxruntime")
        engine = OrtPass(generator, label, tile, cache)
        notes = [] if engine.tiled.tile == "off" else ["tiled images: torch, fp32"]
        if device.type != "cpu":
            notes.append(f"device=auto found {device.type}, but onnxruntime runs on the CPU")
        return engine, "onnxruntime, fp32 on cpu" + (f" ({'; '.join(notes)})" if notes else "")
    dtype = resolve_dtype(precision, device)
    try:
        engine = OnePass(generator, device, dtype, tile)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"precision={precision}: cannot run on {device}: {err}") from None
    why = [] if backend == "torch" else ["backend=auto"]
    if precision == "auto":
        why.append(f"precision=auto: {_precision_reason(device, dtype)}")
    line = f"torch, {PRECISION_NAMES[dtype]} on {device}"
    return engine, line + (f" ({'; '.join(why)})" if why else "")


def _precision_reason(device: torch.device, dtype: torch.dtype) -> str:
    if device.type == "cpu":
        return "this CPU has native bf16" if cpu_has_native_bf16() else "no native bf16 here"
    if device.type == "cuda":
        return "this GPU has bf16" if dtype == torch.bfloat16 else "no bf16 on this GPU"
    return f"{PRECISION_NAMES[dtype]} on {device.type}"


def _need(*packages: str) -> None:
    for package in packages:
        try:
            __import__(package)
        except ImportError:
            raise ConfigError(f"backend=onnxruntime needs {package}: {INSTALL_ONNX}") from None
