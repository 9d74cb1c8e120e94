"""The Python API, for programs that embed the stylizer:

    from PIL import Image
    from gan_stylizer import Stylizer

    stylizer = Stylizer.load("starry_night")  # a zoo name, a training checkpoint or an export
    image = stylizer(Image.open("photo.jpg"), strength=0.7)  # -> PIL.Image, the photo's size

A call takes a PIL image (any mode), a numpy array (H x W x 3, uint8 0-255 or float 0-1) or a
tensor ([3, H, W] or [1, 3, H, W], float 0-1) and returns a PIL image; device, precision and
backend are chosen as the command line chooses them (device=auto, precision=auto,
backend=auto, tiles above 2 MP).
One Stylizer may be called from several threads: calls run one at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gan_stylizer.color import preserve_color
from gan_stylizer.config.schema import EXPORTED_SUFFIXES
from gan_stylizer.config.validate import check_backend, parse_strengths
from gan_stylizer.devices import pick_device
from gan_stylizer.errors import ConfigError
from gan_stylizer.inference.backends import build
from gan_stylizer.inference.exported import load_exported
from gan_stylizer.io.images import MAX_PIXELS, pil_to_tensor, tensor_to_pil
from gan_stylizer.zoo import load_any


class Stylizer:
    """A trained stylizer, loaded once, called per image."""

    def __init__(self, apply, name: str, conditioned: bool) -> None:
        self._apply = apply
        self.name = name
        self.conditioned = conditioned
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, model: str | Path, device: str = "auto", precision: str = "auto", backend: str = "auto"
    ) -> Stylizer:
        """A zoo name (gan_stylizer.zoo.names()), a training checkpoint (.ckpt) or an exported
        model (.onnx, .pt2). backend: auto (torch) | torch | onnxruntime (fp32 on the CPU, the
        generator exported once and cached; see gan_stylizer.inference.backends)."""
        check_backend(str(backend), str(device), str(precision), str(model))
        torch_device = pick_device(device)
        spec = str(model)
        if Path(spec).suffix.lower() in EXPORTED_SUFFIXES:
            apply, label = load_exported(spec, torch_device)
            return cls(apply, label, bool(apply.conditioned))
        generator, label = load_any(spec)
        engine, _ = build(generator, label, torch_device, str(precision), "auto", str(backend))
        return cls(engine, label, generator.conditioned)

    def __call__(
        self, image: Any, strength: float | None = None, preserve_colors: bool = False
    ) -> Image.Image:
        """The stylized image, as a PIL image of the input's size. strength: a dial model's
        style strength in [0, 1] (default: the model's own, 0.5)."""
        content = to_tensor(image)
        if strength is not None:
            if not self.conditioned:
                raise ConfigError(f"strength={strength}: {self.name} has no strength input")
            strength = parse_strengths(strength)[0]
        with self._lock, torch.no_grad():
            out = self._apply(content) if strength is None else self._apply(content, strength)
        if preserve_colors:
            out = preserve_color(content, out)
        return tensor_to_pil(out)


def to_tensor(image: Any) -> torch.Tensor:
    """PIL image, numpy array or tensor -> float32 RGB [1, 3, H, W] in [0, 1]; ValueError with
    a sentence for anything else."""
    if isinstance(image, Image.Image):
        tensor = pil_to_tensor(image)
    elif isinstance(image, np.ndarray):
        tensor = _from_numpy(image)
    elif isinstance(image, torch.Tensor):
        tensor = image.detach().to("cpu", torch.float32)
        tensor = tensor.unsqueeze(0) if tensor.dim() == 3 else tensor
        if tensor.dim() != 4 or tensor.shape[:2] != (1, 3):
            raise ValueError(
                f"a tensor must be [3, H, W] or [1, 3, H, W], got {tuple(image.shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise ValueError("the tensor holds NaN or infinite values")
        tensor = tensor.clamp(0, 1)
    else:
        raise ValueError(
            f"expected a PIL image, a numpy array or a tensor, got {type(image).__name__}"
        )
    h, w = tensor.shape[-2:]
    if h * w > MAX_PIXELS or min(h, w) < 1:
        raise ValueError(f"{w}x{h}: the image must have 1 to {MAX_PIXELS:,} pixels")
    return tensor


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"a numpy image must be H x W x 3 (or 4), got shape {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("the array holds NaN or infinite values")
        values = np.clip(array.astype(np.float32), 0.0, 1.0)
    else:
        raise ValueError(f"a numpy image must be uint8 (0-255) or float (0-1), got {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1).unsqueeze(0)


__all__ = ["Stylizer", "to_tensor"]
