"""Typed config schemas for the two entry points.

Hydra composes the YAML files in configs/ on top of these dataclasses, so a misspelled key or a
value of the wrong type fails at start-up with a message that names the key. The code then works
with plain dataclass instances, and checkpoints store the config as a plain dict (asdict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gan_stylizer.perceptual import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS


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


FORMATS = ("onnx", "pt2")


EXPORTED_SUFFIXES = (".onnx", ".pt2")
