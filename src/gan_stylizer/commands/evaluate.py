"""The evaluate command: one method (a generator, or the optimization) on every photo of a
folder, under the fixed ruler; the report in output=.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.commands.overrides import check, register, run_hydra
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import EvaluateConfig
from gan_stylizer.config.validate import validate_evaluate
from gan_stylizer.devices import pick_device
from gan_stylizer.errors import ConfigError
from gan_stylizer.evaluation.report import write_report
from gan_stylizer.evaluation.ruler import Evaluator, reference_description
from gan_stylizer.evaluation.runners import (
    evaluate_one_pass,
    evaluate_optimization,
    load_photos,
    one_pass,
)
from gan_stylizer.io.images import resize_long_side, save_image
from gan_stylizer.plain import to_plain
from gan_stylizer.styles import data_dir_of, load_style_image
from gan_stylizer.zoo import load_any


def run(cfg) -> Path:  # cfg: gan_stylizer.config.EvaluateConfig
    """Evaluate one method on every photo of cfg.input; returns the report folder."""

    validate_evaluate(cfg)
    device = pick_device(cfg.device)
    generator = None
    if cfg.method == "gan":
        generator, label = load_any(cfg.ckpt)  # a checkpoint file, or a zoo name
        generator = generator.to(device)
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
        f"swd {mean['swd']:.4g} palette {mean['palette']:.3g} ssim {mean['ssim']:.3f} "
        f"edges {mean['edges']:.3f}"
    )
    print(f"report: {out_dir / 'metrics.md'}, {out_dir / 'sheet.png'}")
    return out_dir


GROUPS = ("style",)
# file names: reserved characters in them get the quoting
PATH_KEYS = ("input", "ckpt", "output", "style.path", "data_dir")
register(
    "evaluate",
    EvaluateConfig,
    GROUPS,
    usage=(
        "python scripts/evaluate.py input=FOLDER [ckpt=ZOO_NAME|last.ckpt | "
        "method=optimize] [key=value ...]   (or: gan-stylizer evaluate ...)"
    ),
    about=(
        "Scores a stylizer on a folder of photos under the fixed ruler: style and content"
        " loss, SWD to the painting, SSIM and edges against the photo, seconds and memory"
        " per image."
    ),
)


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with fail_cleanly():
        run(to_dataclass(cfg, EvaluateConfig))


def main() -> None:
    """The command line: checked against the schema, then Hydra."""
    check(sys.argv[1:], EvaluateConfig, GROUPS, PATH_KEYS)
    run_hydra(_hydra_main)


if __name__ == "__main__":
    main()
