"""Typed config schemas for the two entry points.

Hydra composes the YAML files in configs/ on top of these dataclasses, so a misspelled key or a
value of the wrong type fails at start-up with a message that names the key. The code then works
with plain dataclass instances, and checkpoints store the config as a plain dict (asdict).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_stylizer.perceptual import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS


class ConfigError(ValueError):
    """A config value is unusable; the message names the key and what to do."""


@dataclass
class StyleConfig:
    name: str = "starry_night"
    path: str | None = None  # any painting: overrides the registry
    size: int = 512  # long side (px) of the painting: sets the stroke scale (train.yaml: 768)


@dataclass
class VGGConfig:
    weights: str = "caffe"  # caffe | torchvision | none
    pooling: str = "max"  # max | avg


@dataclass
class LossConfig:
    alpha: float = 5.0  # style weight (training; loss=optimize uses 300)
    beta: float = 1.0  # content weight
    tv: float = 0.0  # total-variation weight
    adv: float = 0.1  # adversarial weight, relative (training only)
    adv_type: str = "hinge"  # hinge | nonsaturating | lsgan
    # Where the adversarial gradient is scaled to `adv` × the perceptual one: over the whole
    # batch, or per image (each image's own share: a conditioned generator's batch mixes style
    # weights 25× apart). auto: image for a conditioned generator, batch otherwise.
    adv_balance: str = "auto"  # auto | batch | image
    # How much each image of a conditioned generator's batch moves G (its α spans
    # alpha_min…alpha_max): none = its own loss as is (the α = 25 images dominate);
    # alpha = its perceptual loss × α_mid/α_i (α_mid = √(alpha_min·alpha_max)); image = its
    # perceptual gradient at the pixels rescaled to the batch's mean norm. Each image's own
    # optimum is unchanged. auto: alpha (measured, docs/results.md); a plain generator has
    # one α for every image and ignores it.
    perceptual_balance: str = "auto"  # auto | none | alpha | image
    r1: float = 0.0  # R1 penalty weight on real samples (training only)
    # A conditioned generator (model=conditioned): strength s in [0, 1] trains with
    # α = alpha_min·(alpha_max/alpha_min)^s, a log scale; s = 0.5 is their geometric mean.
    alpha_min: float = 1.0
    alpha_max: float = 25.0
    # How each image's s is drawn: uniform in [0, 1], or arcsine (Beta(½, ½): s = sin²(π·u/2),
    # twice uniform's share within 0.1 of each end, where an α has neighbours on one side
    # only); strength_ends of the draws exactly at s = 0 or 1 (at −m and 1 + m with the
    # margin below), half each. Measured at 1000 steps (docs/results.md): each moved the
    # dial's ends towards the dedicated models without moving its middle.
    strength_sampling: str = "arcsine"  # uniform | arcsine
    strength_ends: float = 0.3
    # Training draws s over [−m, 1 + m] (α beyond alpha_min…alpha_max by the same log scale,
    # 0.72…34.5 for 1…25 at m = 0.1), so that s = 0 and 1 lie inside the trained range and
    # are not pulled towards the middle; inference still takes s in [0, 1]. Measured at 1000
    # steps (docs/results.md): 0.1 brings both ends within 15% of the dedicated models on
    # every term; 0.25 overshoots at s = 0.
    strength_margin: float = 0.1
    style_layers: dict[str, float] = field(
        default_factory=lambda: {
            name: 1.0 / len(DEFAULT_STYLE_LAYERS) for name in DEFAULT_STYLE_LAYERS
        }
    )
    content_layer: str = DEFAULT_CONTENT_LAYER
    vgg: VGGConfig = field(default_factory=VGGConfig)


@dataclass
class GeneratorConfig:
    channels: int = 32
    n_residual: int = 5
    norm: str = "instance"  # instance | batch | none
    conditioned: bool = False  # a style-strength input (FiLM on every instance norm)


@dataclass
class DiscriminatorConfig:
    channels: int = 64
    n_layers: int = 3
    # Real samples: crops of the painting at style.size times a random scale in this range.
    crop_scale: tuple[float, float] = (0.8, 1.25)


@dataclass
class ModelConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass
class DataConfig:
    source: str = "samples"  # samples | folder | coco
    root: str | None = None  # folder of training photos (data=folder, data=coco)
    val_root: str | None = None  # photos for the fixed validation grid; default: from root
    image_size: int = 128  # training crop (px)
    # Each photo is first resized so its long side is a random value in this range, then
    # cropped: the generator sees scenes at the scale users stylize them (about 512 px).
    resize_long_side: tuple[int, int] = (384, 640)
    batch_size: int = 4
    num_workers: int = 2
    val_count: int = 4
    val_size: int = 384  # long side of the validation photos


@dataclass
class TrainerConfig:
    steps: int = 3000  # generator updates (= batches); trainer.global_step counts 2 per batch
    lr_g: float = 1e-3
    lr_d: float = 2e-4
    # model=conditioned: the strength path (embedding and FiLM layers, which start at zero)
    # learns at lr_g × this; 1 keeps one parameter group (checkpoints from before it resume).
    lr_strength_mult: float = 1.0
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    warmup_steps: int = 50  # content-only generator steps before style and D kick in
    clip_grad: float = 0.0  # max grad norm for G and D (0 = off)
    max_nonfinite: int = 10  # consecutive skipped steps before the run stops
    ckpt_every: int = 500  # generator steps between writes of last.ckpt (at most this is lost)
    keep_every: int | None = None  # ... between kept step_NNNNNN.ckpt (null: ckpt_every; 0: none)
    image_every: int = 250  # generator steps between validation image grids
    log_every: int = 10  # generator steps between scalar logs
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto | 32 | bf16-mixed (16-mixed is refused)
    threads: int = 0  # CPU threads for torch (0 = torch's default)


@dataclass
class TrainConfig:
    name: str = "starry_night"
    seed: int = 0
    # auto: resume this run directory's own newest checkpoint if it has one, else start fresh
    ckpt_path: str | None = "auto"  # auto | null | last | path/to/file.ckpt | path/to/run_dir
    data_dir: str | None = None  # where data/styles and data/coco live; default <repo>/data
    style: StyleConfig = field(default_factory=StyleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class StylizeConfig:
    input: str | None = None  # file, folder (recursive) or glob
    output: str | None = None  # file (one input) or folder; default next to the input
    ckpt: str | None = None  # trained generator; without it: the per-image optimization
    size: int | None = None  # long side; default: original size (ckpt) or 512 (optimization)
    scale: float | None = None  # or: the original size times this factor
    overwrite: bool = False
    device: str = "auto"  # auto | cpu | cuda | mps
    preserve_color: bool = False
    # One pass (ckpt=) only:
    precision: str = "auto"  # auto | 32 | bf16 | fp16
    tile: str = "auto"  # auto | off | tile size in px
    batch_size: int = 4  # images of equal size stylized together (folders, video frames)
    # A conditioned generator (model=conditioned): a strength in [0, 1] or a list of them (one
    # output each, or side by side in one strip with grid=true); default: the model's default.
    strength: Any = None
    grid: bool = False
    # Optimization only:
    steps: int = 300
    optimizer: str = "lbfgs"  # lbfgs | adam
    lr: float | None = None
    init: str = "content"  # content | noise
    tol: float = 1e-5
    seed: int = 0
    data_dir: str | None = None
    style: StyleConfig = field(default_factory=StyleConfig)
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass
class ExportConfig:
    ckpt: str | None = None  # the training checkpoint to export (its EMA generator)
    format: str = "onnx"  # onnx | pt2
    output: str | None = None  # default: beside ckpt, <ckpt stem>.<format>
    overwrite: bool = False
    check: bool = True  # compare the export with PyTorch on a random image of odd size


@dataclass
class EvaluateConfig:
    input: str | None = None  # folder (recursive), file or glob of content photos
    ckpt: str | None = None  # method=gan: the trained generator
    method: str = "gan"  # gan (one pass, needs ckpt) | optimize (the seed's method)
    strength: float | None = None  # method=gan, a conditioned ckpt: the strength to evaluate
    size: int = 512  # long side every photo is evaluated at
    # The reference total L = alpha·L_style + beta·L_content that ranks outputs (see evaluate.yaml)
    alpha: float = 50.0
    beta: float = 1.0
    steps: int = 300  # method=optimize: L-BFGS steps
    snapshots: list[int] = field(default_factory=list)  # method=optimize: also report these
    equal_quality_steps: int = 0  # method=gan: >0 measures time to equal quality (max steps)
    limit: int | None = None  # only the first N photos (sorted by path)
    output: str | None = None  # folder; default outputs/evaluate/<label>_<time>
    overwrite: bool = False
    sheet_rows: int = 6  # photos in the contact sheet
    device: str = "auto"
    data_dir: str | None = None
    style: StyleConfig = field(default_factory=StyleConfig)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(allowed)}")


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}={value} must be {'≥' if allow_zero else '>'} 0")


ADV_BALANCES = ("auto", "batch", "image")
PERCEPTUAL_BALANCES = ("auto", "none", "alpha", "image")
STRENGTH_SAMPLINGS = ("uniform", "arcsine")


def resolve_adv_balance(setting: str, conditioned: bool) -> str:
    """loss.adv_balance as training applies it: auto is per image for a conditioned generator,
    per batch otherwise."""
    if setting == "auto":
        return "image" if conditioned else "batch"
    return setting


def resolve_perceptual_balance(setting: str, conditioned: bool) -> str:
    """loss.perceptual_balance as training applies it: auto is alpha for a conditioned
    generator; a plain generator's images share one α, so it has none."""
    if not conditioned:
        return "none"
    return "alpha" if setting == "auto" else setting


# What training did for a loss setting before the option existed: a run whose saved config
# lacks the key was trained so (the resume check and scripts/compare_strength.py read it so).
BEFORE_THE_OPTION = {
    "adv_balance": "batch",  # one balance per batch
    "perceptual_balance": "none",  # each image's loss as is
    "strength_sampling": "uniform",
    "strength_ends": 0.0,
    "strength_margin": 0.0,
}


def trained_with(loss: dict, name: str):
    """loss.<name> a run was trained with, from its saved config's loss section."""
    return loss.get(name, BEFORE_THE_OPTION[name])


def applied_loss_setting(name: str, value, conditioned: bool):
    """A loss setting of BEFORE_THE_OPTION as training applies it (auto resolved; the strength
    draws are None for a plain generator, which has none)."""
    if name == "adv_balance":
        return resolve_adv_balance(value, conditioned)
    if name == "perceptual_balance":
        return resolve_perceptual_balance(value, conditioned)
    if not conditioned:
        return None
    return float(value) if isinstance(value, int | float) else value


def describe_strength_draws(sampling: str, ends: float, margin: float) -> str:
    """How a conditioned run draws each image's s, in words (model card, compare_strength)."""
    return (
        f"strengths drawn {sampling}"
        + (f", {ends:.0%} at the ends" if ends else "")
        + (f", over [{-margin:g}, {1 + margin:g}]" if margin else "")
    )


def validate_loss(cfg: LossConfig) -> None:
    from gan_stylizer.losses import ADVERSARIAL_LOSSES
    from gan_stylizer.models.vgg import LAYER_NAMES, WEIGHT_SOURCES

    for key in ("alpha", "beta", "tv", "adv", "r1"):
        _positive(f"loss.{key}", getattr(cfg, key), allow_zero=True)
    if cfg.alpha == 0 and cfg.beta == 0:
        raise ConfigError("loss.alpha and loss.beta are both 0: nothing to optimize")
    _choice("loss.adv_type", cfg.adv_type, ADVERSARIAL_LOSSES)
    _choice("loss.adv_balance", cfg.adv_balance, ADV_BALANCES)
    _choice("loss.perceptual_balance", cfg.perceptual_balance, PERCEPTUAL_BALANCES)
    _choice("loss.strength_sampling", cfg.strength_sampling, STRENGTH_SAMPLINGS)
    if not 0.0 <= cfg.strength_ends < 1.0:
        raise ConfigError(f"loss.strength_ends={cfg.strength_ends} must be in [0, 1)")
    if not 0.0 <= cfg.strength_margin <= 0.5:
        raise ConfigError(f"loss.strength_margin={cfg.strength_margin} must be in [0, 0.5]")
    _choice("loss.vgg.weights", cfg.vgg.weights, WEIGHT_SOURCES)
    _choice("loss.vgg.pooling", cfg.vgg.pooling, ("max", "avg"))
    if not cfg.style_layers:
        raise ConfigError("loss.style_layers is empty")
    for name in (*cfg.style_layers, cfg.content_layer):
        _choice("loss layer", name, LAYER_NAMES)


def validate_train(cfg: TrainConfig) -> None:
    """Fail at start-up, before any expensive work, on values that cannot work."""
    from gan_stylizer.models.generator import NORMS

    validate_loss(cfg.loss)
    _positive("style.size", cfg.style.size)
    _choice("data.source", cfg.data.source, ("samples", "folder", "coco"))
    if cfg.data.source == "folder" and not cfg.data.root:
        raise ConfigError("data=folder needs data.root=/path/to/photos")
    d = cfg.data
    for key in ("image_size", "batch_size", "val_count", "val_size"):
        _positive(f"data.{key}", getattr(d, key))
    _positive("data.num_workers", d.num_workers, allow_zero=True)
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
    _positive("model.generator.channels", cfg.model.generator.channels)
    _positive("model.discriminator.n_layers", cfg.model.discriminator.n_layers)
    n_layers = cfg.model.discriminator.n_layers
    # D's stride-2 convs (k4, p1) halve the crop; its last two convs (k4, s1, p1) take 1 px each.
    if cfg.loss.adv > 0 and d.image_size // 2**n_layers < 3:
        raise ConfigError(
            f"data.image_size={d.image_size} is too small for a discriminator with "
            f"model.discriminator.n_layers={n_layers}: it needs crops of at least "
            f"{3 * 2**n_layers} px (raise data.image_size or lower n_layers)"
        )
    s_lo, s_hi = cfg.model.discriminator.crop_scale
    if not (0 < s_lo <= s_hi):
        raise ConfigError("model.discriminator.crop_scale must be [min, max] with 0 < min ≤ max")
    t = cfg.trainer
    keys = ("steps", "lr_g", "lr_d", "lr_strength_mult", "ckpt_every", "image_every")
    for key in (*keys, "log_every", "max_nonfinite"):
        _positive(f"trainer.{key}", getattr(t, key))
    if t.keep_every is not None:
        _positive("trainer.keep_every", t.keep_every, allow_zero=True)
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
    from gan_stylizer.export import EXPORTED_SUFFIXES
    from gan_stylizer.inference import PRECISIONS, parse_tile

    if not cfg.input:
        raise ConfigError("input= is required: a photo, a folder, a glob or a video")
    if cfg.size is not None:
        _positive("size", cfg.size)
    if cfg.scale is not None:
        _positive("scale", cfg.scale)
        if cfg.size is not None:
            raise ConfigError("size= and scale= both given: use one")
    _choice("device", cfg.device, ("auto", "cpu", "cuda", "mps"))
    _choice("precision", str(cfg.precision), PRECISIONS)
    try:
        tile = parse_tile(cfg.tile)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _positive("batch_size", cfg.batch_size)
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
    _positive("steps", cfg.steps)
    if cfg.ckpt is None:
        validate_loss(cfg.loss)
        _positive("style.size", cfg.style.size)


def validate_export(cfg: ExportConfig) -> None:
    from gan_stylizer.export import FORMATS

    if not cfg.ckpt:
        raise ConfigError("ckpt= is required: the training checkpoint to export")
    _choice("format", cfg.format, FORMATS)


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


def to_dataclass(cfg: DictConfig | dict, schema: type) -> Any:
    """Compose-time DictConfig (or plain dict) -> validated schema instance."""
    merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
    return OmegaConf.to_object(merged)


def to_plain(cfg: Any) -> dict:
    """Schema instance -> plain dict (tuples as lists), safe for weights_only checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(asdict(cfg))
