"""Validation of each command's config: every value that cannot work is refused at start-up,
before any expensive work, with one line that names the key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gan_stylizer.config.schema import (
    BACKENDS,
    EXPORTED_SUFFIXES,
    FORMATS,
    EvaluateConfig,
    ExportConfig,
    LossConfig,
    ObjectiveConfig,
    ServeConfig,
    StylizeConfig,
    TrainConfig,
)
from gan_stylizer.devices import PRECISIONS
from gan_stylizer.errors import ConfigError
from gan_stylizer.io.names import component_problem
from gan_stylizer.losses import ADVERSARIAL_LOSSES
from gan_stylizer.models.generator import NORMS
from gan_stylizer.models.vgg import LAYER_NAMES, WEIGHT_SOURCES

# The longest side any size key may ask for (JPEG's and WebP's limit is 65,535 px); what is
# made is also kept under MAX_PIXELS pixels, the limit for decoded inputs, image by image.
MAX_SIDE = 65_500
MAX_SCALE = 64.0


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(allowed)}")


def check_backend(backend: str, device: str, precision: str, ckpt: str | None) -> None:
    """backend= against device=, precision= and ckpt=, as given (before auto is resolved).
    Without ckpt (the optimization) there is no one pass for it to choose."""
    _choice("backend", backend, BACKENDS)
    if backend == "auto" or not ckpt:
        return
    suffix = Path(ckpt).suffix.lower()
    if suffix in EXPORTED_SUFFIXES:  # an export runs in its own format's runtime
        if (suffix, backend) not in ((".onnx", "onnxruntime"), (".pt2", "torch")):
            raise ConfigError(
                f"backend={backend}: a {suffix} export runs in "
                f"{'onnxruntime' if suffix == '.onnx' else 'torch'}; leave backend=auto"
            )
        return
    if backend == "onnxruntime":
        if device not in ("auto", "cpu"):
            raise ConfigError(f"backend=onnxruntime runs on the CPU, not device={device}")
        if precision not in ("auto", "32"):
            raise ConfigError(f"backend=onnxruntime runs in fp32, not precision={precision}")


def _positive(
    key: str, value: float, allow_zero: bool = False, at_most: float | None = None
) -> None:
    """A finite number > 0 (≥ 0 with allow_zero), at most `at_most`: NaN and inf never pass."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}={value} must be a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}={value} must be {'≥' if allow_zero else '>'} 0")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{key}={value} must be at most {at_most:g}")


def _component(key: str, value: str) -> None:
    problem = component_problem(str(value))
    if problem:
        raise ConfigError(f"{key}={value!r}: becomes a folder or file name, and {problem}")


def validate_objective(cfg: ObjectiveConfig) -> None:
    """loss.*: the seed's objective (the optimization's, and training's perceptual part)."""
    for key in ("alpha", "beta", "tv"):
        _positive(f"loss.{key}", getattr(cfg, key), allow_zero=True)
    for layer, weight in cfg.style_layers.items():
        _positive(f"loss.style_layers.{layer}", weight, allow_zero=True)
    if cfg.alpha == 0 and cfg.beta == 0:
        raise ConfigError("loss.alpha and loss.beta are both 0: nothing to optimize")
    _choice("loss.vgg.weights", cfg.vgg.weights, WEIGHT_SOURCES)
    _choice("loss.vgg.pooling", cfg.vgg.pooling, ("max", "avg"))
    if not cfg.style_layers:
        raise ConfigError("loss.style_layers is empty")
    for name in (*cfg.style_layers, cfg.content_layer):
        _choice("loss layer", name, LAYER_NAMES)


def validate_loss(cfg: LossConfig) -> None:
    """loss.*: training's objective, the adversarial term and the dial's range."""
    validate_objective(cfg)
    for key in ("adv", "r1"):
        _positive(f"loss.{key}", getattr(cfg, key), allow_zero=True)
    _choice("loss.adv_type", cfg.adv_type, ADVERSARIAL_LOSSES)


def validate_train(cfg: TrainConfig) -> None:
    """Fail at start-up, before any expensive work, on values that cannot work."""
    validate_loss(cfg.loss)
    _component("name", cfg.name)
    _component("style.name", cfg.style.name)
    _positive("style.size", cfg.style.size, at_most=MAX_SIDE)
    _choice("data.source", cfg.data.source, ("samples", "folder", "coco"))
    if cfg.data.source == "folder" and not cfg.data.root:
        raise ConfigError("data=folder needs data.root=/path/to/photos")
    d = cfg.data
    for key in ("image_size", "val_size"):
        _positive(f"data.{key}", getattr(d, key), at_most=MAX_SIDE)
    for key in ("batch_size", "val_count"):
        _positive(f"data.{key}", getattr(d, key), at_most=10_000)
    _positive("data.num_workers", d.num_workers, allow_zero=True, at_most=256)
    for bound in d.resize_long_side:
        _positive("data.resize_long_side", bound, at_most=MAX_SIDE)
    lo, hi = d.resize_long_side
    if not (d.image_size <= lo <= hi):
        raise ConfigError(
            f"data.resize_long_side={list(d.resize_long_side)} must satisfy "
            f"data.image_size ({d.image_size}) ≤ min ≤ max"
        )
    _choice("model.generator.norm", cfg.model.generator.norm, NORMS)
    if cfg.model.generator.conditioned:
        if cfg.model.generator.norm != "instance":
            raise ConfigError(
                "model.generator.conditioned=true needs model.generator.norm=instance"
            )
        if not 0 < cfg.loss.alpha_min < cfg.loss.alpha_max:
            raise ConfigError(
                f"a conditioned generator needs 0 < loss.alpha_min < loss.alpha_max, got "
                f"{cfg.loss.alpha_min} and {cfg.loss.alpha_max}"
            )
    _positive("model.generator.channels", cfg.model.generator.channels, at_most=1024)
    _positive(
        "model.generator.n_residual", cfg.model.generator.n_residual, allow_zero=True, at_most=64
    )
    _positive("model.discriminator.channels", cfg.model.discriminator.channels, at_most=1024)
    _positive("model.discriminator.n_layers", cfg.model.discriminator.n_layers, at_most=8)
    n_layers = cfg.model.discriminator.n_layers
    # D's stride-2 convs (k4, p1) halve the crop; its last two convs (k4, s1, p1) take 1 px each.
    if cfg.loss.adv > 0 and d.image_size // 2**n_layers < 3:
        raise ConfigError(
            f"data.image_size={d.image_size} is too small for a discriminator with "
            f"model.discriminator.n_layers={n_layers}: it needs crops of at least "
            f"{3 * 2**n_layers} px (raise data.image_size or lower n_layers)"
        )
    s_lo, s_hi = cfg.model.discriminator.crop_scale
    _positive("model.discriminator.crop_scale", s_lo)
    _positive("model.discriminator.crop_scale", s_hi)
    if not (0 < s_lo <= s_hi):
        raise ConfigError("model.discriminator.crop_scale must be [min, max] with 0 < min ≤ max")
    t = cfg.trainer
    keys = ("steps", "lr_g", "lr_d", "ckpt_every", "image_every")
    for key in (*keys, "log_every", "max_nonfinite"):
        _positive(f"trainer.{key}", getattr(t, key))
    if t.keep_every is not None:
        _positive("trainer.keep_every", t.keep_every, allow_zero=True)
    _positive("trainer.clip_grad", t.clip_grad, allow_zero=True)
    _positive("trainer.threads", t.threads, allow_zero=True, at_most=1024)
    for key in ("lr_g", "lr_d"):
        _positive(f"trainer.{key}", getattr(t, key), at_most=10.0)
    for beta in t.betas:
        if not 0 <= beta < 1:
            raise ConfigError(f"trainer.betas={list(t.betas)}: each in [0, 1)")
    _positive("trainer.warmup_steps", t.warmup_steps, allow_zero=True)
    _positive("trainer.lr_decay_steps", t.lr_decay_steps, allow_zero=True)
    if t.lr_decay_steps > t.steps:
        raise ConfigError(
            f"trainer.lr_decay_steps={t.lr_decay_steps} is more than trainer.steps={t.steps}"
        )
    if not 0 <= t.ema_decay < 1:
        raise ConfigError(f"trainer.ema_decay={t.ema_decay} must be in [0, 1)")
    if str(t.precision) == "16-mixed":
        # Under manual optimization the fp16 loss scale only moves inside opt.step(): our
        # non-finite guard and clipping would see scaled gradients and skip the very steps
        # that lower the scale.
        raise ConfigError(
            "trainer.precision=16-mixed is not supported (fp16 loss scaling and manual GAN "
            "steps do not mix); use trainer.precision=auto (default), bf16-mixed or 32"
        )
    _choice("trainer.precision", str(t.precision), ("auto", "32", "32-true", "bf16-mixed"))


def parse_strengths(value: Any) -> list[float] | None:
    """strength= as given (None, a number, a list, or text like "0,0.5,1") -> floats in [0, 1]."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Sequence):  # a number (a list comes from Hydra as a ListConfig)
        items = [items]
    strengths = []
    for item in items:
        try:
            if isinstance(item, bool):  # strength=true would read as 1.0
                raise TypeError
            s = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"strength={value!r}: {item!r} is not a number") from None
        if s in strengths:
            raise ConfigError(f"strength={value!r}: {s:g} is listed twice")
        if not 0.0 <= s <= 1.0:
            raise ConfigError(f"strength={value!r}: {s:g} is outside [0, 1]")
        strengths.append(s)
    if not strengths:
        raise ConfigError("strength= is empty")
    return strengths


def validate_stylize(cfg: StylizeConfig) -> None:

    if not cfg.input:
        raise ConfigError("input= is required: a photo, a folder, a glob or a video")
    if cfg.size is not None:
        _positive("size", cfg.size, at_most=MAX_SIDE)
    if cfg.scale is not None:
        _positive("scale", cfg.scale, at_most=MAX_SCALE)
        if cfg.size is not None:
            raise ConfigError("size= and scale= both given: use one")
    _choice("device", cfg.device, ("auto", "cpu", "cuda", "mps"))
    _choice("precision", str(cfg.precision), PRECISIONS)
    check_backend(cfg.backend, cfg.device, str(cfg.precision), cfg.ckpt)
    try:
        tile = parse_tile(cfg.tile)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _positive("batch_size", cfg.batch_size, at_most=1024)
    strengths = parse_strengths(cfg.strength)
    if strengths is not None and not cfg.ckpt:
        raise ConfigError("strength= needs ckpt= of a conditioned generator (model=conditioned)")
    if cfg.grid and (strengths is None or len(strengths) < 2):
        raise ConfigError("grid=true needs several strengths, e.g. strength=[0,0.5,1]")
    if cfg.ckpt and Path(cfg.ckpt).suffix.lower() in EXPORTED_SUFFIXES:
        if str(cfg.precision) != "auto":
            raise ConfigError(
                f"precision={cfg.precision}: an exported model runs as exported (fp32)"
            )
        if tile != "auto":
            raise ConfigError(
                f"tile={cfg.tile}: tiling needs the training checkpoint, not an export"
            )
    _choice("optimizer", cfg.optimizer, ("lbfgs", "adam"))
    _choice("init", cfg.init, ("content", "noise"))
    _positive("steps", cfg.steps, at_most=1_000_000)
    if cfg.lr is not None:
        _positive("lr", cfg.lr, at_most=1e6)
    _positive("tol", cfg.tol, allow_zero=True)
    if cfg.ckpt is None:
        validate_objective(cfg.loss)
        _positive("style.size", cfg.style.size, at_most=MAX_SIDE)


def validate_export(cfg: ExportConfig) -> None:

    if not cfg.ckpt:
        raise ConfigError("ckpt= is required: the training checkpoint to export")
    _choice("format", cfg.format, FORMATS)


def validate_serve(cfg: ServeConfig) -> None:
    if cfg.models is not None and not Path(cfg.models).expanduser().is_dir():
        raise ConfigError(f"models={cfg.models}: no such folder")
    if not cfg.host or any(ch.isspace() or ch in "/\\" for ch in cfg.host):
        raise ConfigError(f"host={cfg.host!r}: an address such as 127.0.0.1 or 0.0.0.0")
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"port={cfg.port}: 0 (a free port) to 65535")
    _choice("device", cfg.device, ("auto", "cpu", "cuda", "mps"))
    _choice("precision", str(cfg.precision), PRECISIONS)
    for key in ("concurrency", "queue_size", "max_upload_mb", "keep_models"):
        value = getattr(cfg, key)
        if not 1 <= value <= 10_000:
            raise ConfigError(f"{key}={value}: 1 to 10000")


def validate_evaluate(cfg: EvaluateConfig) -> None:
    if not cfg.input:
        raise ConfigError("input= is required: a folder of photos (or a file or a glob)")
    _choice("method", cfg.method, ("gan", "optimize"))
    if cfg.method == "gan" and not cfg.ckpt:
        raise ConfigError("method=gan needs ckpt=path/to/last.ckpt (or use method=optimize)")
    if cfg.method == "optimize" and cfg.ckpt:
        raise ConfigError("method=optimize takes no ckpt= (it is the per-image optimization)")
    if cfg.strength is not None:
        if cfg.method != "gan":
            raise ConfigError("strength= is for method=gan with a conditioned ckpt")
        if len(parse_strengths(cfg.strength)) != 1:
            raise ConfigError(f"strength={cfg.strength}: evaluate one strength per run")
    for key in ("size", "steps", "sheet_rows"):
        _positive(key, getattr(cfg, key))
    _positive("alpha", cfg.alpha, allow_zero=True)
    _positive("beta", cfg.beta, allow_zero=True)
    _positive("equal_quality_steps", cfg.equal_quality_steps, allow_zero=True)
    _positive("style.size", cfg.style.size)
    if cfg.limit is not None:
        _positive("limit", cfg.limit)
    bad = [s for s in cfg.snapshots if not 0 < s <= cfg.steps]
    if bad:
        raise ConfigError(f"snapshots={bad}: every snapshot must be in 1..steps ({cfg.steps})")
    _choice("device", cfg.device, ("auto", "cpu", "cuda", "mps"))


MIN_TILE = 64


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
    if size > MAX_SIDE:
        raise ValueError(f"tile={size}: tiles must be at most {MAX_SIDE} px")
    return size - size % 4
