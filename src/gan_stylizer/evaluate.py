"""Numbers that rank stylizers: the seed's losses under a fixed reference network, a texture
distance that no method here optimizes (sliced Wasserstein over VGG features), two measures of
content preservation that do not use VGG at all (SSIM of luminance, edge agreement), and
seconds and peak memory per image.

Every metric takes RGB [0, 1] tensors [1, 3, H, W] and returns plain floats. The reference is
fixed on purpose, whatever a model was trained with: caffe VGG19, max pooling, style layers
relu1_1 … relu5_1 weighted 1/5 each, content relu4_2. Runs are comparable only under one ruler.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_stylizer.images import luminance
from gan_stylizer.losses import content_loss, style_loss, total_loss
from gan_stylizer.models.vgg import build_vgg
from gan_stylizer.perceptual import (
    DEFAULT_CONTENT_LAYER,
    DEFAULT_STYLE_LAYERS,
    PerceptualCriterion,
)

SWD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
SWD_PROJECTIONS = 128
SWD_SEED = 0
# Feature vectors per layer that enter the SWD (quantiles, evenly spaced): enough to resolve the
# distributions, small enough that relu1_1 of a 512-px image sorts in milliseconds.
SWD_POINTS = 16384


# ---- texture: sliced Wasserstein distance --------------------------------------------------


def random_directions(channels: int, projections: int, seed: int) -> torch.Tensor:
    """[channels, projections] unit vectors, the same for the same (channels, projections, seed)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    dirs = torch.randn(channels, projections, generator=gen, dtype=torch.float64)
    return (dirs / dirs.norm(dim=0, keepdim=True)).float()


def _quantiles(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """`count` evenly spaced quantiles ((i + ½)/count) of each column of a sorted [N, P] tensor."""
    n = sorted_values.shape[0]
    if count == n:
        return sorted_values
    index = ((torch.arange(count, dtype=torch.float64) + 0.5) * n / count).long().clamp_(0, n - 1)
    return sorted_values[index.to(sorted_values.device)]


def sorted_projections(points: torch.Tensor, projections: int, seed: int) -> torch.Tensor:
    """[N, C] points projected on the fixed random unit directions, each projection sorted:
    [projections, N] (sorted along the contiguous last dimension, about twice as fast on a CPU
    as sorting the columns of [N, projections])."""
    dirs = random_directions(points.shape[1], projections, seed).to(points.device)
    return torch.sort((points.float() @ dirs).t().contiguous(), dim=1).values


def _sw_sorted(sorted_a: torch.Tensor, sorted_b: torch.Tensor, max_points: int) -> float:
    """SW₂ from two clouds' sorted projections [P, N] and [P, M] (same directions)."""
    count = min(sorted_a.shape[1], sorted_b.shape[1], max_points)
    qa = _quantiles(sorted_a.t(), count)
    qb = _quantiles(sorted_b.t(), count).to(qa.device)
    return math.sqrt((qa - qb).double().pow(2).mean().item())


def sliced_wasserstein(
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    projections: int = SWD_PROJECTIONS,
    seed: int = SWD_SEED,
    max_points: int = SWD_POINTS,
) -> float:
    """SW₂ between two point clouds [N, C] and [M, C]: √(mean over random unit directions u of
    W₂²(u·a, u·b)), each 1-D W₂ taken between sorted projections (their quantiles when N ≠ M
    or the clouds are larger than max_points). Zero for identical clouds, invariant to the order
    of the points, and for b = a + v it is √(mean_u (u·v)²) exactly."""
    if points_a.dim() != 2 or points_b.dim() != 2 or points_a.shape[1] != points_b.shape[1]:
        raise ValueError(
            f"point clouds must be [N, C] and [M, C], got {tuple(points_a.shape)} "
            f"and {tuple(points_b.shape)}"
        )
    return _sw_sorted(
        sorted_projections(points_a, projections, seed),
        sorted_projections(points_b, projections, seed),
        max_points,
    )


def feature_points(features: torch.Tensor) -> torch.Tensor:
    """[1, C, H, W] feature map -> [H·W, C] cloud of feature vectors."""
    return features[0].float().flatten(1).t()


# ---- content preservation without VGG ------------------------------------------------------


def _gaussian_kernel(sigma: float, radius: int) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).float()


def _blur(image: torch.Tensor, sigma: float, radius: int, padding: str) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, H, W]; padding 'valid' (no pad) or 'reflect'."""
    k = _gaussian_kernel(sigma, radius).to(image.device)
    if padding == "reflect":
        image = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    image = F.conv2d(image, k.view(1, 1, 1, -1))
    return F.conv2d(image, k.view(1, 1, -1, 1))


def ssim(image_a: torch.Tensor, image_b: torch.Tensor) -> float:
    """Mean SSIM of the luminance of two RGB [0, 1] images [1, 3, H, W] (Wang et al. 2004:
    Gaussian window σ = 1.5 over 11 px, K1 = 0.01, K2 = 0.03, data range 1; the mean is taken
    over the positions where the window fits, as scikit-image does). 1 for identical images."""
    if image_a.shape != image_b.shape:
        raise ValueError(f"ssim needs equal shapes, got {image_a.shape} and {image_b.shape}")
    if min(image_a.shape[-2:]) < 11:
        raise ValueError("ssim needs images of at least 11×11 px")
    ya, yb = luminance(image_a.float()).double(), luminance(image_b.float()).double()
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return _blur(x.float(), 1.5, 5, "valid").double()

    mu_a, mu_b = blur(ya), blur(yb)
    var_a = blur(ya * ya) - mu_a**2
    var_b = blur(yb * yb) - mu_b**2
    cov = blur(ya * yb) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.mean().item()


def edge_map(image: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Sobel gradient magnitude of the Gaussian-blurred luminance: [1, 1, H, W]. The blur keeps
    the scene's outlines and drops the brush-stroke texture a stylizer is meant to add."""
    y = _blur(luminance(image.float()), sigma, max(1, round(3 * sigma)), "reflect")
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=y.device)
    y = F.pad(y, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(y, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(y, sobel.t().contiguous().view(1, 1, 3, 3))
    return torch.sqrt(gx * gx + gy * gy)


def edge_agreement(stylized: torch.Tensor, content: torch.Tensor) -> float:
    """Pearson correlation of the edge maps of output and content, in [-1, 1]: 1 when every
    outline of the photo is still there with the same relative strength."""
    if stylized.shape[-2:] != content.shape[-2:]:
        raise ValueError(
            f"edge_agreement needs equal sizes, got {tuple(stylized.shape[-2:])} "
            f"and {tuple(content.shape[-2:])}"
        )
    a = edge_map(stylized).double().flatten()
    b = edge_map(content).double().flatten()
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return (a @ b / denom).item() if denom > 0 else 0.0


# ---- time and memory -----------------------------------------------------------------------


def _rss_peak_mb() -> float | None:
    """This process's peak resident set size since the last reset (Linux), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_mem_mb: float | None = None  # CUDA: peak allocated; CPU: peak RSS of the process
    peak_mem_kind: str = ""


@contextlib.contextmanager
def measure(device: torch.device) -> Iterator[Measurement]:
    """Wall time and peak memory of the enclosed block (CUDA synchronized at both ends)."""
    m = Measurement()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        m.peak_mem_kind = "cuda_max_allocated"
    else:
        m.peak_mem_kind = "process_peak_rss" if _reset_rss_peak() else "process_peak_rss_lifetime"
    start = time.perf_counter()
    try:
        yield m
    finally:
        if cuda:
            torch.cuda.synchronize(device)
            m.peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            m.peak_mem_mb = _rss_peak_mb()
        m.seconds = time.perf_counter() - start


# ---- the evaluator -------------------------------------------------------------------------


@dataclass
class ImageMetrics:
    name: str
    width: int
    height: int
    style: float
    content: float
    total: float
    swd: float
    swd_layers: dict[str, float] = field(default_factory=dict)
    ssim: float = 0.0
    edges: float = 0.0
    seconds: float | None = None
    peak_mem_mb: float | None = None
    extra: dict[str, float | int | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        return d | self.extra


METRIC_KEYS = ("style", "content", "total", "swd", "ssim", "edges", "seconds", "peak_mem_mb")


def mean_metrics(rows: Sequence[dict]) -> dict[str, float | None]:
    """Mean of every numeric key over the rows where it is a number (a None, e.g. a target
    never reached, is left out of that key's mean)."""
    keys: dict[str, None] = {}  # ordered union of the numeric keys
    for row in rows:
        for k, v in row.items():
            if (
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and k not in ("width", "height")
            ):
                keys[k] = None
    out: dict[str, float | None] = {}
    for key in keys:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        out[key] = sum(values) / len(values) if values else None
    return out


class Evaluator:
    """The fixed ruler: holds the reference VGG19 and the style image's statistics.

    alpha, beta: the weights of the total L = α·L_style + β·L_content that ranks outputs.
    weights: 'caffe' for every number we report; 'none' only for tests of the plumbing.
    """

    def __init__(
        self,
        style_image: torch.Tensor,
        *,
        alpha: float,
        beta: float,
        device: torch.device | str = "cpu",
        weights: str = "caffe",
        projections: int = SWD_PROJECTIONS,
        seed: int = SWD_SEED,
    ) -> None:
        self.alpha, self.beta = float(alpha), float(beta)
        self.device = torch.device(device)
        self.projections, self.seed = projections, seed
        layers = sorted({*DEFAULT_STYLE_LAYERS, DEFAULT_CONTENT_LAYER, *SWD_LAYERS})
        vgg = build_vgg(layers, weights=weights, pooling="max")
        weights_per_layer = {name: 1.0 / len(DEFAULT_STYLE_LAYERS) for name in DEFAULT_STYLE_LAYERS}
        self.criterion = PerceptualCriterion(vgg, weights_per_layer, DEFAULT_CONTENT_LAYER)
        self.criterion.to(self.device)
        style_image = style_image.to(self.device)
        self.criterion.set_style(style_image)
        with torch.no_grad():
            feats = self.criterion.vgg(style_image)
        # The painting's side of every SWD, projected and sorted once for all outputs.
        self._style_sorted = {
            name: sorted_projections(feature_points(feats[name]), projections, seed)
            for name in SWD_LAYERS
        }

    @torch.no_grad()
    def features(self, stylized: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reference VGG's features of an output: one pass serves every metric."""
        return self.criterion.vgg(stylized.to(self.device).float())

    @torch.no_grad()
    def losses(
        self,
        stylized: torch.Tensor,
        content: torch.Tensor,
        features: dict[str, torch.Tensor] | None = None,
    ) -> tuple[float, float, float]:
        """(L_style, L_content, α·L_style + β·L_content) under the reference network
        (features: the output's, from self.features, if already computed)."""
        features = self.features(stylized) if features is None else features
        target = self.criterion.content_features(content.to(self.device).float())
        criterion = self.criterion
        l_style = style_loss(criterion.target_grams(), features, criterion.layer_weights)
        l_content = content_loss(target, features[criterion.content_layer])
        total = total_loss(l_style, l_content, self.alpha, self.beta)
        return l_style.item(), l_content.item(), total.item()

    @torch.no_grad()
    def swd(
        self, stylized: torch.Tensor, features: dict[str, torch.Tensor] | None = None
    ) -> dict[str, float]:
        """SWD per layer between the output's and the style image's feature vectors."""
        features = self.features(stylized) if features is None else features
        return {
            name: _sw_sorted(
                sorted_projections(feature_points(features[name]), self.projections, self.seed),
                self._style_sorted[name],
                SWD_POINTS,
            )
            for name in SWD_LAYERS
        }

    def evaluate(
        self,
        name: str,
        stylized: torch.Tensor,
        content: torch.Tensor,
        seconds: float | None = None,
        peak_mem_mb: float | None = None,
    ) -> ImageMetrics:
        """Every metric of one output against its content photo (same size, [1, 3, H, W])."""
        if stylized.shape != content.shape:
            raise ValueError(
                f"{name}: output {tuple(stylized.shape)} and content {tuple(content.shape)} differ"
            )
        features = self.features(stylized)
        l_style, l_content, total = self.losses(stylized, content, features)
        layers = self.swd(stylized, features)
        del features
        stylized, content = stylized.float().cpu(), content.float().cpu()
        return ImageMetrics(
            name=name,
            width=int(content.shape[-1]),
            height=int(content.shape[-2]),
            style=l_style,
            content=l_content,
            total=total,
            swd=sum(layers.values()) / len(layers),
            swd_layers=layers,
            ssim=ssim(stylized, content),
            edges=edge_agreement(stylized, content),
            seconds=seconds,
            peak_mem_mb=peak_mem_mb,
        )


def steps_to_reach(history: Sequence[dict[str, float]], target: float) -> tuple[int, float] | None:
    """(updates, seconds) after which an optimization's total loss first was ≤ target, from
    optimize_image's history (entry i is the image after i updates); None if it never was."""
    for i, entry in enumerate(history):
        if entry["total"] <= target:
            return i, entry["seconds"]
    return None


def format_table(rows: Sequence[tuple[str, dict]], columns: Sequence[tuple[str, str]]) -> str:
    """Markdown table: rows of (label, metrics dict), columns of (key, header)."""

    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, str):
            return value
        if isinstance(value, int):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
            return f"{value:.3g}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"

    lines = [
        "| | " + " | ".join(h for _, h in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    lines += [
        "| " + label + " | " + " | ".join(cell(m.get(k)) for k, _ in columns) + " |"
        for label, m in rows
    ]
    return "\n".join(lines) + "\n"


Stylizer = Callable[[torch.Tensor], torch.Tensor]


# ---- running a method over a folder --------------------------------------------------------


@dataclass
class Photo:
    name: str  # path relative to the input folder, for tables
    content: torch.Tensor  # RGB [0, 1] [1, 3, H, W] at the evaluation size


def one_pass(
    generator: torch.nn.Module, device: torch.device, strength: float | None = None
) -> Stylizer:
    """The trained generator as a stylizer: one forward pass, fp32 output on the CPU
    (strength: a conditioned generator's, default its own default)."""

    @torch.no_grad()
    def apply(content: torch.Tensor) -> torch.Tensor:
        content = content.to(device)
        out = generator(content) if strength is None else generator(content, strength)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out.float().cpu()

    return apply


def evaluate_one_pass(
    photos: Sequence[Photo],
    stylize: Stylizer,
    evaluator: Evaluator,
    *,
    equal_quality_steps: int = 0,
    progress: Callable[[str], None] = print,
) -> tuple[list[dict], list[torch.Tensor]]:
    """Metrics of a one-pass stylizer on every photo, and its outputs.

    equal_quality_steps > 0: for each photo, also run the seed's optimization (same reference
    network, same α/β, from the photo) until its total loss is no higher than the one-pass
    output's, for at most that many steps, and report the steps, the seconds and their ratio to
    the one-pass seconds (eq_steps is None when the budget was not enough).
    """
    from gan_stylizer.optimize import optimize_image

    rows, outputs = [], []
    if photos:  # the first call pays one-time costs (allocator, kernels): keep them out
        stylize(photos[0].content)
    for photo in photos:
        with measure(evaluator.device) as m:
            stylized = stylize(photo.content)
        metrics = evaluator.evaluate(photo.name, stylized, photo.content, m.seconds, m.peak_mem_mb)
        if equal_quality_steps > 0:
            result = optimize_image(
                photo.content.to(evaluator.device),
                evaluator.criterion,
                alpha=evaluator.alpha,
                beta=evaluator.beta,
                steps=equal_quality_steps,
                stop_below=metrics.total,
                progress=False,
                clamp=True,  # the recorded loss must be the saved (clamped) image's
            )
            reached = steps_to_reach(result.history, metrics.total)
            metrics.extra = {
                "eq_steps": reached[0] if reached else None,
                "eq_seconds": reached[1] if reached else None,
                "eq_ratio": reached[1] / m.seconds if reached and m.seconds > 0 else None,
            }
        rows.append(metrics.as_dict())
        outputs.append(stylized)
        progress(_progress_line(metrics))
    return rows, outputs


def evaluate_optimization(
    photos: Sequence[Photo],
    evaluator: Evaluator,
    *,
    steps: int,
    snapshots: Sequence[int] = (),
    progress: Callable[[str], None] = print,
) -> tuple[dict[int, list[dict]], dict[int, list[torch.Tensor]], list[list[dict]]]:
    """The seed's method (L-BFGS from the photo, the evaluator's network and α/β) on every photo.

    Returns, per step count in snapshots ∪ {steps}: the metrics rows and the outputs; and per
    photo the loss history (entry i: the image after i updates, with the seconds it took), from
    which the steps needed to reach any other method's total can be read (steps_to_reach).
    """
    from gan_stylizer.optimize import optimize_image

    marks = sorted({*(s for s in snapshots if 0 < s < steps), steps})
    rows: dict[int, list[dict]] = {s: [] for s in marks}
    outputs: dict[int, list[torch.Tensor]] = {s: [] for s in marks}
    histories = []
    for photo in photos:
        taken: dict[int, tuple[torch.Tensor, float]] = {}
        start = time.perf_counter()

        def snapshot(step: int, image: torch.Tensor, taken=taken, start=start) -> None:
            if step in marks:
                taken[step] = (image.detach().cpu().clone(), time.perf_counter() - start)

        with measure(evaluator.device) as m:
            result = optimize_image(
                photo.content.to(evaluator.device),
                evaluator.criterion,
                alpha=evaluator.alpha,
                beta=evaluator.beta,
                steps=steps,
                tol=0.0,  # the full budget: a step count means that many steps
                on_step=snapshot,
                progress=False,
                clamp=True,  # the recorded loss must be the saved (clamped) image's
            )
        histories.append(result.history)
        for mark in marks:
            # A run that converged early (L-BFGS found no descent) keeps its last image.
            image, seconds = taken.get(mark, (result.image.cpu(), m.seconds))
            metrics = evaluator.evaluate(photo.name, image, photo.content, seconds, m.peak_mem_mb)
            metrics.extra = {"steps": min(mark, result.steps)}
            rows[mark].append(metrics.as_dict())
            outputs[mark].append(image)
            progress(_progress_line(metrics, f"optimize@{mark}"))
    return rows, outputs, histories


def _progress_line(m: ImageMetrics, label: str = "") -> str:
    prefix = f"{label} " if label else ""
    secs = f"{m.seconds:.2f} s" if m.seconds is not None else "-"
    return (
        f"{prefix}{m.name}: style {m.style:.4g} content {m.content:.4g} total {m.total:.4g} "
        f"swd {m.swd:.4g} ssim {m.ssim:.3f} edges {m.edges:.3f} ({secs})"
    )


# ---- the command: scripts/evaluate.py ------------------------------------------------------

TABLE_COLUMNS = (
    ("style", "L_style"),
    ("content", "L_content"),
    ("total", "total"),
    ("swd", "SWD"),
    ("ssim", "SSIM"),
    ("edges", "edges"),
    ("seconds", "s/image"),
    ("peak_mem_mb", "peak MiB"),
)


def load_photos(spec: str, size: int, limit: int | None) -> tuple[list[Photo], list[str]]:
    """Photos at `size` long side from a folder, file or glob, and one line per unreadable file
    (skipped, not fatal)."""
    from gan_stylizer.images import ImageError, load_image
    from gan_stylizer.stylize import collect_inputs

    files, root = collect_inputs(spec)
    photos, skipped = [], []
    for path in files:
        if limit is not None and len(photos) >= limit:
            break
        try:
            content = load_image(path, size=size)
        except ImageError as err:
            skipped.append(f"skip: {err}")
            continue
        name = str(path.relative_to(root)) if root is not None else path.name
        photos.append(Photo(name, content))
    return photos, skipped


def write_report(
    out_dir,
    label: str,
    rows: list[dict],
    config: dict,
    sheet_rows: list[list[torch.Tensor]],
    header: str = "",
) -> dict:
    """metrics.json (per image and mean), metrics.md (table) and sheet.png in out_dir."""
    from gan_stylizer.images import make_grid, save_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mean = mean_metrics(rows)
    report = {"label": label, "config": config, "mean": mean, "per_image": rows}
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    columns = list(TABLE_COLUMNS)
    for key, head in (
        ("eq_steps", "eq. steps"),
        ("eq_seconds", "eq. s"),
        ("eq_ratio", "eq. ratio"),
    ):
        if key in mean:
            columns.append((key, head))
    table = format_table([(r["name"], r) for r in rows] + [("**mean**", mean)], columns)
    (out_dir / "metrics.md").write_text(f"# {label}\n\n{header}{table}")
    if sheet_rows:
        save_image(make_grid(sheet_rows, height=256, same_width=True), out_dir / "sheet.png")
    return report


def run(cfg) -> Path:  # cfg: gan_stylizer.config.EvaluateConfig
    """Evaluate one method on every photo of cfg.input; returns the report folder."""
    from gan_stylizer.checkpoint import load_generator
    from gan_stylizer.config import ConfigError, to_plain, validate_evaluate
    from gan_stylizer.images import resize_long_side, save_image
    from gan_stylizer.stylize import pick_device
    from gan_stylizer.train import data_dir_of, load_style_image

    validate_evaluate(cfg)
    device = pick_device(cfg.device)
    generator = None
    if cfg.method == "gan":
        generator, run_config = load_generator(cfg.ckpt)
        generator = generator.to(device)
        label = str(run_config.get("name") or "gan")
        if cfg.strength is not None:
            if not generator.conditioned:
                raise ConfigError(
                    f"strength={cfg.strength}: {cfg.ckpt} has no strength input "
                    "(train one with model=conditioned)"
                )
            label = f"{label}_s{float(cfg.strength):g}"
    else:
        label = f"optimize_{cfg.steps}"
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = Path(cfg.output or f"outputs/evaluate/{label}_{stamp}").expanduser()
    if out_dir.exists() and any(out_dir.iterdir()) and not cfg.overwrite:
        raise ConfigError(f"output={out_dir}: the folder is not empty (overwrite=true reuses it)")
    photos, skipped = load_photos(cfg.input, cfg.size, cfg.limit)
    for line in skipped:
        print(line, file=sys.stderr)
    if not photos:
        raise ConfigError(f"input={cfg.input}: no readable photos")
    style_image = load_style_image(cfg.style, data_dir_of(cfg.data_dir))
    evaluator = Evaluator(style_image, alpha=cfg.alpha, beta=cfg.beta, device=device)
    print(f"evaluating {label} on {len(photos)} photos at {cfg.size} px -> {out_dir}")

    if generator is not None:
        rows, outputs = evaluate_one_pass(
            photos,
            one_pass(generator, device, cfg.strength),
            evaluator,
            equal_quality_steps=cfg.equal_quality_steps,
        )
        columns = {label: (rows, outputs)}
    else:
        by_steps, outs, histories = evaluate_optimization(
            photos, evaluator, steps=cfg.steps, snapshots=cfg.snapshots
        )
        columns = {f"optimize_{s}": (by_steps[s], outs[s]) for s in by_steps}
        (out_dir / "histories.json").parent.mkdir(parents=True, exist_ok=True)
        (out_dir / "histories.json").write_text(
            json.dumps({p.name: h for p, h in zip(photos, histories, strict=True)}) + "\n"
        )

    for name, (_, outputs) in columns.items():
        for photo, image in zip(photos, outputs, strict=True):
            save_image(image, out_dir / "images" / name / Path(photo.name).with_suffix(".png"))
    style_cell = resize_long_side(style_image, 256)
    sheet = [
        [photo.content, *(outs[i] for _, outs in columns.values()), style_cell]
        for i, photo in enumerate(photos[: cfg.sheet_rows])
    ]
    config = to_plain(cfg) | {"reference": reference_description()}
    report = None
    for i, (name, (rows, _)) in enumerate(columns.items()):
        # One report per column; the last (the full budget) also gets the folder's top level.
        sub = out_dir if i == len(columns) - 1 else out_dir / name
        report = write_report(sub, name, rows, config, sheet if sub == out_dir else [])
    mean = report["mean"] if report else {}
    print(
        f"mean: style {mean['style']:.4g} content {mean['content']:.4g} total {mean['total']:.4g} "
        f"swd {mean['swd']:.4g} ssim {mean['ssim']:.3f} edges {mean['edges']:.3f}"
    )
    print(f"report: {out_dir / 'metrics.md'}, {out_dir / 'sheet.png'}")
    return out_dir


def reference_description() -> dict:
    return {
        "network": "caffe VGG19, max pooling",
        "style_layers": list(DEFAULT_STYLE_LAYERS),
        "content_layer": DEFAULT_CONTENT_LAYER,
        "swd_layers": list(SWD_LAYERS),
        "swd_projections": SWD_PROJECTIONS,
        "swd_seed": SWD_SEED,
        "swd_points": SWD_POINTS,
        "ssim": "luminance, Gaussian 11 px σ=1.5",
        "edges": "Pearson r of Sobel magnitude of luminance blurred σ=2",
    }
