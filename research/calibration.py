"""python research/calibration.py data_dir=PATH (a folder with styles/): each registry
painting's pull (the mean style loss of scikit-image's sample photos against it, under
training's criterion and painting size) and the factor loss.calibrate puts on its style term;
the first line is the reference, REFERENCE_PULL in gan_stylizer/training/calibration.py."""

from __future__ import annotations

import sys

from trainings import UsageError, parse_key_values

from gan_stylizer.config.schema import StyleConfig, TrainConfig
from gan_stylizer.perceptual import build_criterion
from gan_stylizer.styles import REGISTRY, data_dir_of, load_style_image
from gan_stylizer.training.calibration import REFERENCE_PULL, pull, style_scale


def main(argv: list[str]) -> int:
    try:
        options = parse_key_values(argv, {"data_dir": None}, folders=("data_dir",))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data_dir = data_dir_of(options["data_dir"])
    cfg = TrainConfig()
    criterion = build_criterion(cfg.loss)
    print(f"reference (Starry Night) {REFERENCE_PULL:.4g}")
    for name in REGISTRY:
        cfg.style = StyleConfig(name=name, size=cfg.style.size)
        painting = load_style_image(cfg.style, data_dir)
        scale, _ = style_scale(cfg, criterion, painting)
        print(f"{name}: pull {pull(criterion, painting):.4g}, style term x {scale:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
