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
    size: int = 512  # long side (px) of the painting: sets the stroke scale


@dataclass
class VGGConfig:
    weights: str = "caffe"  # caffe | torchvision | none
    pooling: str = "max"  # max | avg


@dataclass
class ObjectiveConfig:
    """The seed's objective L = alpha·L_style + beta·L_content (+ tv·L_tv): the per-image
    optimization's loss (stylize.py without ckpt=)."""

    # Calibrated at 256-512 px outputs; L_content grows with the pixel count, so quadruple alpha
    # to keep the look when the long side doubles.
    alpha: float = 300.0  # style weight: bigger, stronger style
    beta: float = 1.0  # content weight: bigger, more of the photo
    tv: float = 0.0  # total-variation weight
    style_layers: dict[str, float] = field(
        default_factory=lambda: {
            name: 1.0 / len(DEFAULT_STYLE_LAYERS) for name in DEFAULT_STYLE_LAYERS
        }
    )
    content_layer: str = DEFAULT_CONTENT_LAYER
    vgg: VGGConfig = field(default_factory=VGGConfig)


@dataclass
class LossConfig(ObjectiveConfig):
    """Training: L_G = alpha·L_style + beta·L_content + tv·L_tv + adv·λ·L_adv."""

    # Calibrated for 128-px training crops: L_content grows with the crop's pixel count, so
    # quadruple alpha when you double data.image_size. A generator starts from nothing (the
    # optimization starts from the photo), so it needs a far smaller alpha than the
    # optimization's: 10x this and the scene dissolves into texture.
    alpha: float = 5.0
    adv: float = 0.1  # adversarial weight, relative: 0.1 = a tenth of the perceptual gradient
    adv_type: str = "hinge"  # hinge | nonsaturating | lsgan
    r1: float = 0.0  # R1 penalty weight on real samples
    # A conditioned generator (model=conditioned): strength s in [0, 1] trains with
    # α = alpha_min·(alpha_max/alpha_min)^s, a log scale; s = 0.5 is their geometric mean.
    # How the strengths are drawn and balanced is built in (gan_stylizer.dial).
    alpha_min: float = 1.0
    alpha_max: float = 25.0
    # Scale the style term by Starry Night's pull on photos over this painting's, corrected so
    # that the per-image optimum of two sample crops leaves Starry Night's share of the style
    # loss: alpha (and a dial's strength) means as much style for every painting
    # (training/calibration.py)
    calibrate: bool = True


@dataclass
class GeneratorConfig:
    channels: int = 32  # width of the first layer (then x2, x4)
    n_residual: int = 5  # residual blocks at 1/4 resolution
    norm: str = "instance"  # instance | batch | none
    conditioned: bool = False  # a style-strength input (FiLM on every instance norm)


@dataclass
class DiscriminatorConfig:
    channels: int = 64  # width of the first layer
    n_layers: int = 3  # stride-2 layers: 3 sees 70-px patches, 4 sees 142 px
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
    batch_size: int = 4  # photos per generator step
    num_workers: int = 2  # data-loading processes (0: in the training process)
    val_count: int = 4  # fixed validation photos in the sample grids and metrics.json
    val_size: int = 384  # long side of the validation photos


@dataclass
class TrainerConfig:
    steps: int = 3000  # generator updates (= batches); trainer.global_step counts 2 per batch
    lr_g: float = 1e-3  # the generator's Adam learning rate
    lr_d: float = 2e-4  # the discriminator's
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's, for both
    ema_decay: float = 0.999  # G_ema, the generator that is saved for inference
    warmup_steps: int = 50  # content-only generator steps before style and D kick in
    # The last this many generator steps of trainer.steps take both learning rates linearly
    # down to 0 (CycleGAN's schedule); 0 = constant rates throughout.
    lr_decay_steps: int = 0
    clip_grad: float = 0.0  # max grad norm for G and D (0 = off)
    max_nonfinite: int = 10  # consecutive skipped steps before the run stops
    ckpt_every: int = 500  # generator steps between writes of last.ckpt (at most this is lost)
    # generator steps between kept step_NNNNNN.ckpt copies (0: none; null: one per ckpt_every)
    keep_every: int | None = 0
    image_every: int = 250  # generator steps between validation image grids
    log_every: int = 10  # generator steps between scalar logs
    accelerator: str = "auto"  # auto | cpu | gpu | cuda | mps (Lightning's)
    devices: Any = "auto"  # auto | a count | a list of device ids
    num_nodes: int = 1  # machines (SLURM: --nodes)
    strategy: str = "auto"  # auto: DDP with unused-parameter detection on several devices
    precision: str = "auto"  # auto | 32 | bf16-mixed (16-mixed is refused)
    threads: int = 0  # CPU threads for torch (0 = torch's default)


@dataclass
class TrainConfig:
    name: str = "starry_night"  # the run's name: outputs/<name>/<time>/ (train.yaml: the style's)
    seed: int = 0  # initial weights, photo order, crops, strengths: all drawn from it
    # auto: resume this run directory's own newest checkpoint if it has one, else start fresh
    ckpt_path: str | None = "auto"  # auto | null | last | path/to/file.ckpt | path/to/run_dir
    data_dir: str | None = None  # where data/styles and data/coco live; default <repo>/data
    # Training paints at the scale of 512-px photos: bold strokes need a large painting.
    style: StyleConfig = field(default_factory=lambda: StyleConfig(size=768))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class StylizeConfig:
    input: str | None = None  # file, folder (recursive) or glob
    output: str | None = None  # file (one input) or folder; default next to the input
    ckpt: str | None = None  # a zoo name, a checkpoint or an export; none: the optimization
    size: int | None = None  # long side; default: original size (ckpt) or 512 (optimization)
    scale: float | None = None  # or: the original size times this factor
    overwrite: bool = False  # replace existing outputs (default: skip them)
    device: str = "auto"  # auto | cpu | cuda | mps
    preserve_color: bool = False  # keep the photo's colours, take the style's luminance
    precision: str = "auto"  # one pass: auto | 32 | bf16 | fp16
    backend: str = "auto"  # one pass: auto (torch) | torch | onnxruntime (fp32, CPU; cached export)
    tile: str = "auto"  # one pass: auto (above 2 MP) | off | tile size in px
    batch_size: int = 4  # one pass: images of equal size stylized together (folders, video)
    # A strength-dial model: a strength in [0, 1] or a list (one output each, or side by side
    # in one strip with grid=true); default: the model's own (0.5).
    strength: Any = None
    grid: bool = False  # several strengths: one strip per input, side by side
    steps: int = 300  # optimization: L-BFGS (or Adam) steps at most
    optimizer: str = "lbfgs"  # optimization: lbfgs | adam
    lr: float | None = None  # optimization: step size (default: the optimizer's own)
    init: str = "content"  # optimization: start from the photo (content) or noise
    tol: float = 1e-5  # optimization: stop when the loss changes less than this (relative)
    seed: int = 0  # optimization: the noise of init=noise
    data_dir: str | None = None  # where the painting cache data/styles lives; default <repo>/data
    style: StyleConfig = field(default_factory=StyleConfig)
    loss: ObjectiveConfig = field(default_factory=ObjectiveConfig)


@dataclass
class ExportConfig:
    ckpt: str | None = None  # a training checkpoint (its EMA generator) or a zoo name
    format: str = "onnx"  # onnx | pt2
    output: str | None = None  # default: beside ckpt, <ckpt stem>.<format>
    overwrite: bool = False  # replace an existing file
    check: bool = True  # compare the export with PyTorch on a random image of odd size


@dataclass
class EvaluateConfig:
    input: str | None = None  # folder (recursive), file or glob of content photos
    ckpt: str | None = None  # method=gan: a zoo name or a checkpoint
    method: str = "gan"  # gan (one pass, needs ckpt) | optimize (the seed's method)
    strength: float | None = None  # method=gan, a conditioned ckpt: the strength to evaluate
    size: int = 512  # long side every photo is evaluated at
    # The ruler: L = alpha·L_style + beta·L_content under caffe VGG19 (relu1_1..relu5_1,
    # relu4_2). alpha=50 at 512 px is the training default (alpha=5 on 128-px crops) carried to
    # the evaluation size: L_content grows with the pixel count (512x342 ≈ 10.7 x 128²), L_style
    # does not. Compare totals only between evaluations with the same alpha, beta, size, style.
    alpha: float = 50.0
    beta: float = 1.0  # the ruler's content weight
    steps: int = 300  # method=optimize: L-BFGS steps
    snapshots: list[int] = field(default_factory=list)  # method=optimize: also report these
    equal_quality_steps: int = 0  # method=gan: >0 measures time to equal quality (max steps)
    limit: int | None = None  # only the first N photos (sorted by path)
    output: str | None = None  # folder; default outputs/evaluate/<label>_<time>
    overwrite: bool = False  # reuse a non-empty output folder
    sheet_rows: int = 6  # photos in the contact sheet
    device: str = "auto"  # auto | cpu | cuda | mps
    data_dir: str | None = None
    style: StyleConfig = field(default_factory=StyleConfig)


FORMATS = ("onnx", "pt2")
BACKENDS = ("auto", "torch", "onnxruntime")  # the one pass's engine (inference/backends.py)


@dataclass
class ServeConfig:
    models: str | None = None  # also list the checkpoints and exports found below this folder
    host: str = "127.0.0.1"  # this machine only; 0.0.0.0 opens the page to the network
    port: int = 7860  # 0: a free port
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto | 32 | bf16 | fp16
    concurrency: int = 1  # stylizations at once (more only oversubscribes a small CPU)
    queue_size: int = 32  # requests waiting beyond those; more are turned away
    max_upload_mb: int = 50  # per uploaded file
    keep_models: int = 4  # models kept loaded (least recently used unloaded first)
    data_dir: str | None = None  # where the paintings are cached (their thumbnails)


EXPORTED_SUFFIXES = (".onnx", ".pt2")
