"""What the adversarial term buys: train the GAN recipe and the perceptual-loss-only recipe
(Johnson et al. 2016, experiment=johnson2016) on the same data with the same budget, evaluate
both on one folder, and put the per-image optimization (Gatys et al.) beside them.

    python research/compare.py train=PHOTOS val=VAL_PHOTOS [steps=1000] [opt_photos=5]
        [opt_steps=300] [opt_snapshot=100] [sheet_photos=4] [runs=outputs/compare]
        [out=outputs/compare/report] [threads=0] [jobs=1] [limit=N] [style=starry_night] [sheet=DIR]

A run folder that holds a checkpoint of exactly `steps` generator steps (last.ckpt or a kept
step_NNNNNN.ckpt) is reused; one with fewer resumes (research/trainings.py); jobs=2 trains both
recipes at once, each with half the threads.
Writes <out>/results.md (the table), results.json and comparison.png
(content | no adversarial | GAN | optimization), with the evaluation's fixed reference
(gan_stylizer.evaluation; alpha=50 at 512 px). sheet=DIR also makes comparison_sheet.png from
other photos (e.g. ones whose licence allows publishing the result).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from trainings import Training, UsageError, ensure_trained, parse_key_values, trained_steps

from gan_stylizer.checkpoints import load_checkpoint, load_generator
from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.config.schema import StyleConfig
from gan_stylizer.evaluation.report import format_table
from gan_stylizer.evaluation.ruler import Evaluator, mean_metrics, reference_description
from gan_stylizer.evaluation.runners import (
    evaluate_one_pass,
    evaluate_optimization,
    load_photos,
    one_pass,
    steps_to_reach,
)
from gan_stylizer.io.images import save_image
from gan_stylizer.io.sheets import make_grid
from gan_stylizer.styles import default_data_dir, load_style_image

RECIPES = {"gan": "starry_night", "johnson2016": "johnson2016"}
DEFAULTS = {
    "train": None,
    "val": None,
    "steps": 1000,  # experiment=starry_night: about an hour on a 2-core AVX2 CPU in fp32
    "opt_photos": 5,
    "opt_steps": 300,
    "opt_snapshot": 100,
    "sheet_photos": 4,
    "runs": "outputs/compare",
    "out": "outputs/compare/report",
    "threads": 0,
    "jobs": 1,
    "limit": None,
    "size": 512,
    "alpha": 50.0,
    "beta": 1.0,
    "style": "starry_night",
    "sheet": None,
}
INTS = (
    "steps",
    "opt_photos",
    "opt_steps",
    "opt_snapshot",
    "sheet_photos",
    "threads",
    "jobs",
    "limit",
    "size",
)


def parse_args(argv: list[str]) -> dict:
    args = parse_key_values(argv, DEFAULTS, INTS, ("alpha", "beta"))
    if not 0 < args["opt_snapshot"] < args["opt_steps"]:
        raise UsageError("opt_snapshot must be between 0 and opt_steps")
    return args


def recipes(args: dict) -> list[Training]:
    """The two recipes, on the same photos and painting; a found checkpoint must agree on
    whether it was trained adversarially."""

    def check(key: str):
        def differs(config: dict) -> str | None:
            adv = config["loss"]["adv"]
            return None if (adv > 0) == (key == "gan") else f"trained with loss.adv={adv}"

        return differs

    return [
        Training(
            key,
            Path(args["runs"]) / key,
            [
                f"experiment={experiment}",
                f"style={args['style']}",
                f"data.root={args['train']}",
                f"data.val_root={args['val']}",
            ],
            check(key),
        )
        for key, experiment in RECIPES.items()
    ]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args["threads"] > 0:
        torch.set_num_threads(args["threads"])
    ckpts = ensure_trained(recipes(args), args["steps"], args["jobs"], args["threads"])

    photos, skipped = load_photos(args["val"], args["size"], args["limit"])
    for line in skipped:
        print(line, file=sys.stderr)
    if not photos:
        raise UsageError(f"val={args['val']}: no readable photos")
    style_image = load_style_image(
        StyleConfig(name=args["style"], size=args["size"]), default_data_dir()
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    evaluator = Evaluator(style_image, alpha=args["alpha"], beta=args["beta"], device=device)

    rows, outputs = {}, {}
    for key, ckpt in ckpts.items():
        generator, _ = load_generator(ckpt)
        print(f"== {key}: one pass on {len(photos)} photos")
        rows[key], outputs[key] = evaluate_one_pass(
            photos, one_pass(generator.to(device), device), evaluator
        )

    subset = photos[: args["opt_photos"]]
    print(f"== optimization: {args['opt_steps']} L-BFGS steps on {len(subset)} photos")
    by_steps, opt_outputs, histories = evaluate_optimization(
        subset, evaluator, steps=args["opt_steps"], snapshots=[args["opt_snapshot"]]
    )
    # Time to equal quality: read off each photo's optimization history.
    for key in RECIPES:
        for row, history in zip(rows[key], histories, strict=False):
            reached = steps_to_reach(history, row["total"])
            row["eq_steps"] = reached[0] if reached else None
            row["eq_seconds"] = reached[1] if reached else None
            row["eq_ratio"] = reached[1] / row["seconds"] if reached else None

    n, k = len(photos), len(subset)

    def mean_all(key: str) -> dict:  # time to equal quality exists for the subset only
        return {m: v for m, v in mean_metrics(rows[key]).items() if not m.startswith("eq_")}

    table_rows = [
        (f"GAN (adv={_adv(ckpts['gan'])}), {n} photos", mean_all("gan")),
        (f"no adversarial (Johnson 2016), {n} photos", mean_all("johnson2016")),
        (f"GAN, first {k} photos", mean_metrics(rows["gan"][:k])),
        (f"no adversarial, first {k} photos", mean_metrics(rows["johnson2016"][:k])),
    ] + [
        (f"optimization, {s} steps, first {k} photos", mean_metrics(by_steps[s]))
        for s in sorted(by_steps)
    ]
    columns = [
        ("style", "L_style ↓"),
        ("content", "L_content ↓"),
        ("total", "total ↓"),
        ("swd", "SWD ↓"),
        ("ssim", "SSIM ↑"),
        ("edges", "edges ↑"),
        ("seconds", "s/image"),
        ("peak_mem_mb", "peak MiB"),
        ("eq_steps", "opt. steps to equal total"),
        ("eq_seconds", "opt. s to equal total"),
        ("eq_ratio", "time ratio"),
    ]
    table = format_table(table_rows, columns)
    unreached = {key: sum(1 for r in rows[key][:k] if r["eq_steps"] is None) for key in RECIPES}

    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    sheet = [
        [
            photo.content,
            outputs["johnson2016"][i],
            outputs["gan"][i],
            opt_outputs[args["opt_steps"]][i],
        ]
        for i, photo in enumerate(subset[: args["sheet_photos"]])
    ]
    if sheet:
        save_image(make_grid(sheet, height=256, same_width=True), out / "comparison.png")
    if args["sheet"] is not None:
        save_image(
            make_grid(sheet_from(args, ckpts, evaluator, device), height=256, same_width=True),
            out / "comparison_sheet.png",
        )
    results = {
        "args": args,
        "checkpoints": {key: str(p) for key, p in ckpts.items()},
        "trained_steps": {key: trained_steps(p) for key, p in ckpts.items()},
        "reference": reference_description()
        | {"alpha": args["alpha"], "beta": args["beta"], "size": args["size"]},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "table": {label: m for label, m in table_rows},
        "per_image": {
            "gan": rows["gan"],
            "johnson2016": rows["johnson2016"],
            **{f"optimize_{s}": by_steps[s] for s in by_steps},
        },
        "eq_unreached": unreached,
        # Per photo of the optimization subset, per step: style, content, total, seconds; for
        # other equal-quality criteria (e.g. steps to the one-pass style loss).
        "optimization_histories": {p.name: h for p, h in zip(subset, histories, strict=True)},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    note = (
        f"Reference: caffe VGG19, α={args['alpha']:g}, β={args['beta']:g}, photos at "
        f"{args['size']} px long side, {torch.get_num_threads()} CPU threads on {device}. "
        f"Time to equal total: L-BFGS steps from the photo until the optimization's total is "
        f"no higher than the one-pass output's; ratio = those seconds / one-pass seconds "
        f"(not reached within {args['opt_steps']} steps: GAN {unreached['gan']}, "
        f"no adversarial {unreached['johnson2016']} of {k}).\n\n"
    )
    (out / "results.md").write_text(note + table)
    print(note + table)
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'comparison.png'}")
    return 0


def sheet_from(args: dict, ckpts: dict, evaluator: Evaluator, device: torch.device) -> list:
    """Contact-sheet rows (content | no adversarial | GAN | optimization) for the sheet= photos."""
    photos, skipped = load_photos(args["sheet"], args["size"], args["sheet_photos"])
    for line in skipped:
        print(line, file=sys.stderr)
    columns = []
    for key in ("johnson2016", "gan"):
        generator, _ = load_generator(ckpts[key])
        stylize = one_pass(generator.to(device), device)
        columns.append([stylize(p.content) for p in photos])
    print(f"== sheet: optimization on {len(photos)} photos")
    _, opt_outputs, _ = evaluate_optimization(photos, evaluator, steps=args["opt_steps"])
    columns.append(opt_outputs[args["opt_steps"]])
    return [[p.content, *(col[i] for col in columns)] for i, p in enumerate(photos)]


def _adv(ckpt: Path) -> float:
    return load_checkpoint(ckpt)["hyper_parameters"]["config"]["loss"]["adv"]


if __name__ == "__main__":
    with fail_cleanly():
        sys.exit(main(sys.argv[1:]))
