"""Numbers that rank stylizers: the seed's losses under a fixed reference network, a texture
distance that no method here optimizes (sliced Wasserstein over VGG features), two measures of
content preservation that do not use VGG at all (SSIM of luminance, edge agreement), and
seconds and peak memory per image.

Every metric takes RGB [0, 1] tensors [1, 3, H, W] and returns plain floats. The reference is
fixed on purpose, whatever a model was trained with: caffe VGG19, max pooling, style layers
relu1_1 … relu5_1 weighted 1/5 each, content relu4_2. Runs are comparable only under one ruler.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gan_stylizer.errors import ImageError
from gan_stylizer.evaluation.metrics import measure
from gan_stylizer.evaluation.ruler import Evaluator, ImageMetrics
from gan_stylizer.io.images import load_image
from gan_stylizer.io.inputs import collect_inputs
from gan_stylizer.optimize import optimize_image
from gan_stylizer.progress import clock

# ---- texture: sliced Wasserstein distance --------------------------------------------------


# ---- content preservation without VGG ------------------------------------------------------


# ---- time and memory -----------------------------------------------------------------------


# ---- the evaluator -------------------------------------------------------------------------


def steps_to_reach(history: Sequence[dict[str, float]], target: float) -> tuple[int, float] | None:
    """(updates, seconds) after which an optimization's total loss first was ≤ target, from
    optimize_image's history (entry i is the image after i updates); None if it never was."""
    for i, entry in enumerate(history):
        if entry["total"] <= target:
            return i, entry["seconds"]
    return None


OnePassFn = Callable[[torch.Tensor], torch.Tensor]


# ---- running a method over a folder --------------------------------------------------------


@dataclass
class Photo:
    name: str  # path relative to the input folder, for tables
    content: torch.Tensor  # RGB [0, 1] [1, 3, H, W] at the evaluation size


def one_pass(
    generator: torch.nn.Module, device: torch.device, strength: float | None = None
) -> OnePassFn:
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
    stylize: OnePassFn,
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

    rows, outputs = [], []
    if photos:  # the first call pays one-time costs (allocator, kernels): keep them out
        stylize(photos[0].content)
    began = time.perf_counter()
    for done, photo in enumerate(photos, 1):
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
        progress(_counter(done, len(photos), began) + _progress_line(metrics))
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

    marks = sorted({*(s for s in snapshots if 0 < s < steps), steps})
    rows: dict[int, list[dict]] = {s: [] for s in marks}
    outputs: dict[int, list[torch.Tensor]] = {s: [] for s in marks}
    histories = []
    began = time.perf_counter()
    for done, photo in enumerate(photos, 1):
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
            counter = _counter(done, len(photos), began)
            progress(counter + _progress_line(metrics, f"optimize@{mark}"))
    return rows, outputs, histories


def _counter(done: int, total: int, began: float) -> str:
    """`[3/50, ETA 2:10] `: where a long evaluation stands."""
    eta = clock((time.perf_counter() - began) / done * (total - done))
    return f"[{done}/{total}, ETA {eta}] "


def _progress_line(m: ImageMetrics, label: str = "") -> str:
    prefix = f"{label} " if label else ""
    secs = f"{m.seconds:.2f} s" if m.seconds is not None else "-"
    return (
        f"{prefix}{m.name}: style {m.style:.4g} content {m.content:.4g} total {m.total:.4g} "
        f"swd {m.swd:.4g} palette {m.palette:.3g} ssim {m.ssim:.3f} edges {m.edges:.3f} ({secs})"
    )


# ---- the command: scripts/evaluate.py ------------------------------------------------------


def load_photos(spec: str, size: int, limit: int | None) -> tuple[list[Photo], list[str]]:
    """Photos at `size` long side from a folder, file or glob, and one line per unreadable file
    (skipped, not fatal)."""

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
