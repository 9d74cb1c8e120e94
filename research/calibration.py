"""python research/calibration.py data_dir=PATH [optimum=true out=SHEET.png]

data_dir: a folder with styles/. For each registry painting: its pull (the mean style loss of
scikit-image's sample photos against it, under training's criterion and painting size), the
factor the first stage of loss.calibrate puts on its style term (the pull's), and candidates
for another calibration:

- texture pull: the same photos after their colours are matched to the painting's (mean and
  covariance of RGB, Gatys et al. 2017's colour transfer), so that the part of the pull a tint
  removes is left out; the factor a calibration on it would give;
- optimum=true: what the objective itself asks for at the dial's strengths 0, 0.5 and 1. The
  per-image optimization (L-BFGS from the photo, SHARE_STEPS steps) of a training crop of
  astronaut and of chelsea (public domain and CC0) at α = alpha_min·(alpha_max/alpha_min)^s times
  the painting's factor: the style loss left (a share of the photo's) and the content loss
  paid; and the factor a calibration on it would give: the one under which each painting's
  optimum at s=0.5 pays Starry Night's content loss; and the second stage of loss.calibrate,
  the correction under which the optimum at s=0.5 leaves Starry Night's share of the style loss
  (REFERENCE_SHARE). out= writes the optimized photos as a sheet (a row per painting, the
  strengths across).

The first line is the reference, REFERENCE_PULL in gan_stylizer/training/calibration.py.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from trainings import UsageError, parse_key_values

from gan_stylizer.config.schema import StyleConfig, TrainConfig
from gan_stylizer.dial import strength_to_alpha
from gan_stylizer.io.images import load_image, resize_long_side, save_image
from gan_stylizer.io.inputs import sample_photos
from gan_stylizer.io.sheets import caption, make_grid
from gan_stylizer.perceptual import build_criterion
from gan_stylizer.styles import REGISTRY, data_dir_of, load_style_image
from gan_stylizer.training.calibration import (
    DIAL_STEP,
    LIMITS,
    PHOTO_SIZE,
    REFERENCE_PULL,
    REFERENCE_SHARE,
    SHARE_PHOTOS,
    correction_for,
    factor_for,
    optimum,
    pull,
    step_for,
    training_crop,
)

STRENGTHS = (0.0, 0.5, 1.0)


def match_colours(photo: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
    """photo [1,3,H,W] with its RGB mean and covariance made the painting's, clamped to [0, 1]."""

    def stats(image):
        pixels = image.flatten(2)[0].double()
        mean = pixels.mean(1, keepdim=True)
        centred = pixels - mean
        return mean, centred @ centred.T / centred.shape[1] + 1e-5 * torch.eye(3).double()

    def power(matrix, p):
        values, vectors = torch.linalg.eigh(matrix)
        return vectors @ torch.diag(values.clamp_min(1e-8) ** p) @ vectors.T

    mean_p, cov_p = stats(photo)
    mean_s, cov_s = stats(painting)
    pixels = photo.flatten(2)[0].double()
    matched = power(cov_s, 0.5) @ power(cov_p, -0.5) @ (pixels - mean_p) + mean_s
    return matched.clamp(0, 1).float().reshape(photo.shape)


def strength_paying(target: float, contents: list[float]) -> float:
    """The strength at which the optimum's content loss is `target`: log-linear between the
    STRENGTHS' contents (rising with s), extended beyond them by the nearest segment."""
    logs, goal = [math.log(c) for c in contents], math.log(target)
    i = 0
    while i < len(STRENGTHS) - 2 and goal > logs[i + 1]:
        i += 1
    s0, s1, c0, c1 = STRENGTHS[i], STRENGTHS[i + 1], logs[i], logs[i + 1]
    return s0 + (goal - c0) * (s1 - s0) / (c1 - c0) if c1 != c0 else s0


def write_sheet(photos: list[torch.Tensor], rows: dict[str, list[torch.Tensor]], path: Path):
    """The photos in the first row, then one row per painting: each photo optimized at each
    strength, every cell captioned and shown at twice its size."""

    def cell(image: torch.Tensor, label: str) -> torch.Tensor:
        return caption(resize_long_side(image, 2 * image.shape[-1]), label, scale=0.05)

    grid = [[cell(photo, "the photo") for photo in photos]]
    for name, images in rows.items():
        labels = [f"s={STRENGTHS[i // len(photos)]:g}" for i in range(len(images))]
        labels[0] = f"{name}, {labels[0]}"
        grid.append([cell(image, label) for image, label in zip(images, labels, strict=True)])
    save_image(make_grid(grid), path)


def main(argv: list[str]) -> int:
    try:
        options = parse_key_values(
            argv, {"data_dir": None, "optimum": "false", "out": ""}, folders=("data_dir",)
        )
        if options["optimum"] not in ("true", "false"):
            raise UsageError(f"optimum= must be true or false, got {options['optimum']!r}")
        if options["out"] and options["optimum"] != "true":
            raise UsageError("out= needs optimum=true (the sheet shows the optimized photos)")
        if options["out"] and not Path(options["out"]).parent.is_dir():
            raise UsageError(f"out={options['out']}: its folder does not exist")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data_dir = data_dir_of(options["data_dir"])
    cfg = TrainConfig()
    # the second stage's two style weights are the dial's s=0.5 and s=1 (or 0) on 1..25
    assert cfg.loss.alpha_max / cfg.loss.alpha_min == DIAL_STEP**2
    criterion = build_criterion(cfg.loss)
    paths = sample_photos()
    photos = [load_image(path, size=PHOTO_SIZE) for path in paths]
    crops = [training_crop(path) for path in paths[:SHARE_PHOTOS]]
    print(f"reference (Starry Night) {REFERENCE_PULL:.4g}")
    texture_pulls, factors, sheet_rows, contents, shares = {}, {}, {}, {}, {}
    for name in REGISTRY:
        cfg.style = StyleConfig(name=name, size=cfg.style.size)
        painting = load_style_image(cfg.style, data_dir).float()
        measured = pull(criterion, painting)
        factors[name] = factor_for(measured)
        with torch.no_grad():  # the criterion holds the painting's style after pull()
            losses = [criterion(match_colours(p, painting), None)[0].item() for p in photos]
        texture_pulls[name] = sum(losses) / len(losses)
        print(
            f"{name}: pull {measured:.4g}, style term x {factors[name]:.3g}; "
            f"texture pull {texture_pulls[name]:.4g}",
            flush=True,
        )
        if options["optimum"] == "true":
            sheet_rows[name], contents[name], shares[name] = [], [], []
            for s in STRENGTHS:
                alpha = strength_to_alpha(s, cfg.loss.alpha_min, cfg.loss.alpha_max) * factors[name]
                share, content, images = optimum(criterion, crops, alpha, cfg.loss.beta)
                sheet_rows[name] += images
                contents[name].append(content)
                shares[name].append(share)
                print(
                    f"  s={s:g} (alpha {alpha:.3g}): style left {share:.3f} of the photo's, "
                    f"content {content:.3g}",
                    flush=True,
                )
    reference = texture_pulls["starry_night"]
    print("a calibration on the texture pull, Starry Night the reference, would give:")
    for name, texture in texture_pulls.items():
        print(
            f"  {name}: style term x {reference / texture:.3g} (the pull's: x {factors[name]:.3g})"
        )
    if contents:
        ratio = cfg.loss.alpha_max / cfg.loss.alpha_min
        target = contents["starry_night"][STRENGTHS.index(0.5)]
        print("a calibration on the optimum's content at s=0.5 (Starry Night's) would give:")
        for name, paid in contents.items():
            s_equal = strength_paying(target, paid)
            print(
                f"  {name}: Starry Night's content at s={s_equal:.2f}, so style term x "
                f"{factors[name] * ratio ** (s_equal - 0.5):.3g} "
                f"(the pull's: x {factors[name]:.3g})"
            )
    if shares:
        print(
            "the second stage of loss.calibrate (the optimum at s=0.5 leaves Starry Night's "
            f"share, {REFERENCE_SHARE:.4f}; from the shares at s=0.5 and 1, or 0) gives:"
        )
        half = STRENGTHS.index(0.5)
        for name, left in shares.items():
            step = step_for(left[half])  # DIAL_STEP: the α ratio from s=0.5 to 1 on 1..25
            other = left[STRENGTHS.index(1.0 if step > 1 else 0.0)]
            correction = correction_for(left[half], other, step)
            scale = min(max(factors[name] * correction, LIMITS[0]), LIMITS[1])
            print(
                f"  {name}: keeps {left[half]:.4f}, x {correction:.3g}, so style term x "
                f"{scale:.3g} (the pull's: x {factors[name]:.3g})"
            )
    if options["out"]:
        write_sheet(crops, sheet_rows, Path(options["out"]))
        print(f"sheet: {options['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
