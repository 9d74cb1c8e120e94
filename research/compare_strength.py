"""Does one strength-conditioned model match the α sweep? Train a conditioned generator
(model=conditioned: α = alpha_min·(alpha_max/alpha_min)^s) and, for each point s, a dedicated
generator at that α, all with the same recipe, photos and budget; evaluate the conditioned one at
every strength of the curve and each dedicated one at its α, on one folder, under the fixed
reference of gan_stylizer.evaluation.

    python research/compare_strength.py train=PHOTOS val=VAL_PHOTOS [steps=1000]
        [conditioned_steps=STEPS]
        [points=0,0.5,1] [curve=0,0.25,0.5,0.75,1] [alpha_min=1] [alpha_max=25]
        [recipe=starry_night] [style=starry_night] [style_path=FILE] [runs=outputs/strength]
        [conditioned=conditioned] [out=outputs/strength/report] [threads=0] [jobs=1]
        [limit=N] [size=512] [sheet=DIR] [sheet_photos=4] [tolerance=0.15]
        [reuse=EARLIER/results.json] [-- TRAIN.PY OVERRIDES ...]

Arguments after `--` are train.py overrides for every run (e.g. -- trainer.lr_g=5e-4);
conditioned= names the conditioned model's run folder under runs= (to compare a variant,
e.g. conditioned=conditioned_lr -- trainer.lr_g=5e-4, against the same dedicated runs).
conditioned_steps= gives the conditioned model another budget than the dedicated ones' (e.g.
3000: the three dedicated trainings' total, what the sweep it replaces costs); by default all
get `steps`. reuse= takes the dedicated models' evaluations from an earlier comparison's
results.json where its photos, ruler and checkpoints are the same. Runs are reused, resumed or
trained by research/trainings.py (exactly their budget of generator steps each; jobs=N trains N
at once with the threads shared). Writes <out>/results.md (the tables: conditioned vs
dedicated per point with their ratios, and the conditioned curve), results.json, and
strength_sheet.png: rows are photos, columns are the photo, then the conditioned model at each
strength of the curve with the dedicated model right after it at the points.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from trainings import (
    Training,
    UsageError,
    ensure_trained,
    parse_key_values,
)

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import LossConfig, StyleConfig
from gan_stylizer.dial import DRAWS, strength_to_alpha
from gan_stylizer.evaluation.report import format_table
from gan_stylizer.evaluation.ruler import Evaluator, mean_metrics, reference_description
from gan_stylizer.evaluation.runners import evaluate_one_pass, load_photos, one_pass
from gan_stylizer.io.images import save_image
from gan_stylizer.io.sheets import caption, make_grid
from gan_stylizer.perceptual import build_criterion
from gan_stylizer.styles import default_data_dir, load_style_image

DEFAULTS = {
    "train": None,
    "val": None,
    "steps": 1000,  # the reference recipe's budget (experiment=starry_night)
    "conditioned_steps": None,  # the conditioned model's budget (None: steps)
    "points": "0,0.5,1",
    "curve": "0,0.25,0.5,0.75,1",
    "alpha_min": 1.0,
    "alpha_max": 25.0,
    "recipe": "starry_night",
    "style": "starry_night",
    "style_path": None,
    "runs": "outputs/strength",
    "conditioned": "conditioned",
    "out": "outputs/strength/report",
    "threads": 0,
    "jobs": 1,
    "limit": None,
    "size": 512,
    "alpha": 50.0,
    "beta": 1.0,
    "sheet": None,
    "sheet_photos": 4,
    "sheet_height": 192,
    "tolerance": 0.15,
    "reuse": None,
}
INTS = (
    "steps",
    "conditioned_steps",
    "threads",
    "jobs",
    "limit",
    "size",
    "sheet_photos",
    "sheet_height",
)
FLOATS = ("alpha_min", "alpha_max", "alpha", "beta", "tolerance")
MATCHED = ("style", "content", "swd")  # what must be within `tolerance` of the dedicated model


def parse_strengths(key: str, value: str) -> list[float]:
    try:
        values = [float(v) for v in value.split(",")]
    except ValueError:
        raise UsageError(f"{key}={value!r}: expected comma-separated numbers in [0, 1]") from None
    if not all(0.0 <= v <= 1.0 for v in values):
        raise UsageError(f"{key}={value!r}: every strength must be in [0, 1]")
    if len(set(values)) != len(values):
        raise UsageError(f"{key}={value!r}: a strength is listed twice")
    return sorted(values)


def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    """(the script's arguments, the train.py overrides after `--` for every run)."""
    overrides = []
    if "--" in argv:
        argv, overrides = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = parse_key_values(argv, DEFAULTS, INTS, FLOATS, " (train.py overrides go after --)")
    if args["style_path"] is not None and not Path(args["style_path"]).is_file():
        raise UsageError(f"style_path={args['style_path']!r}: no such file")
    if not 0 < args["alpha_min"] < args["alpha_max"]:
        raise UsageError("need 0 < alpha_min < alpha_max")
    if args["conditioned_steps"] is None:
        args["conditioned_steps"] = args["steps"]
    if min(args["steps"], args["conditioned_steps"]) < 1:
        raise UsageError("steps and conditioned_steps must be >= 1")
    if args["size"] < 16 or args["tolerance"] <= 0:
        raise UsageError("size must be >= 16 and tolerance > 0")
    args["points"] = parse_strengths("points", args["points"])
    # The curve holds the points too: each point's conditioned output is on the curve.
    args["curve"] = sorted(set(parse_strengths("curve", args["curve"])) | set(args["points"]))
    return args, overrides


def budget_words(args: dict) -> str:
    if args["conditioned_steps"] == args["steps"]:
        return f"every model trained {args['steps']} generator steps"
    return (
        f"the conditioned model trained {args['conditioned_steps']} generator steps, each "
        f"dedicated one {args['steps']}"
    )


def alpha_at(args: dict, strength: float) -> float:
    return float(strength_to_alpha(strength, args["alpha_min"], args["alpha_max"]))


def same_number(trained: float, requested: str) -> bool:
    try:
        return math.isclose(trained, float(requested))
    except ValueError:
        return True  # train.py refuses the value itself


def dedicated_key(alpha: float) -> str:
    return f"alpha_{alpha:.4g}"


def recipes(args: dict, extra: list[str]) -> list[Training]:
    """The conditioned run and one dedicated run per point; a found checkpoint must agree on
    the style weights it was trained with."""
    common = [
        f"experiment={args['recipe']}",
        f"style={args['style']}",
        f"data.root={args['train']}",
        f"data.val_root={args['val']}",
    ]
    if args["style_path"] is not None:
        common.append(f"style.path={args['style_path']}")
    common += extra

    def conditioned_check(config: dict) -> str | None:
        generator, loss = config["model"]["generator"], config["loss"]
        if not generator.get("conditioned", False):
            return "a generator without a strength input"
        trained = (loss.get("alpha_min"), loss.get("alpha_max"))
        if trained != (args["alpha_min"], args["alpha_max"]):
            return f"trained with loss.alpha_min, alpha_max = {trained}"
        return None

    def dedicated_check(alpha: float):
        def check(config: dict) -> str | None:
            if config["model"]["generator"].get("conditioned", False):
                return "a conditioned generator"
            if not math.isclose(config["loss"]["alpha"], alpha, rel_tol=1e-6):
                return f"trained with loss.alpha={config['loss']['alpha']}"
            return None

        return check

    runs = Path(args["runs"])
    trainings = [
        Training(
            "conditioned",
            runs / args["conditioned"],
            [
                *common,
                "model=conditioned",
                f"loss.alpha_min={args['alpha_min']}",
                f"loss.alpha_max={args['alpha_max']}",
            ],
            conditioned_check,
            steps=args["conditioned_steps"],
        )
    ]
    for s in args["points"]:
        alpha = alpha_at(args, s)
        key = dedicated_key(alpha)
        trainings.append(
            Training(key, runs / key, [*common, f"loss.alpha={alpha:.6g}"], dedicated_check(alpha))
        )
    return trainings


# What must be equal for an earlier comparison's evaluation of a dedicated model to stand.
SAME_RULER = ("val", "limit", "size", "alpha", "beta", "style", "style_path")


def same_setting(key: str, earlier, now) -> bool:
    """One SAME_RULER setting; folders and files are compared as resolved paths (an earlier
    report run with val= relative, this one absolute, measured the same photos)."""
    if key in ("val", "style_path") and earlier is not None and now is not None:
        return Path(earlier).resolve() == Path(now).resolve()
    return earlier == now


def stamp(ckpt: Path) -> list[int]:
    """What tells a checkpoint file from a retrained one at the same path: size, mtime (ns)."""
    info = ckpt.stat()
    return [info.st_size, info.st_mtime_ns]


def earlier_evaluations(
    args: dict, ckpts: dict, budget: dict, names: list[str]
) -> dict[str, list[dict]]:
    """reuse=results.json of an earlier comparison: its per-photo rows (keyed as in its
    per_image: each dedicated model, conditioned_s<strength>) of every model whose checkpoint
    (path, steps, and file size and time where recorded) is the same, if it measured the same
    photos with the same ruler; otherwise nothing is reused (a line says why)."""
    if args["reuse"] is None:
        return {}
    try:
        earlier = json.loads(Path(args["reuse"]).read_text())
        same = all(same_setting(k, earlier["args"][k], args[k]) for k in SAME_RULER)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(
            f"reuse={args['reuse']}: not a comparison's results.json ({err})"
        ) from None
    if not same:
        print(f"reuse={args['reuse']}: another ruler or photos; evaluating everything")
        return {}
    rows = {}
    for key, ckpt in ckpts.items():
        recorded = earlier.get("checkpoint_stamps", {}).get(key)
        if (
            Path(earlier["checkpoints"].get(key, "")).resolve() != ckpt.resolve()
            or earlier["trained_steps"].get(key) != budget[key]
            or (recorded is not None and recorded != stamp(ckpt))
        ):
            continue
        # The conditioned model's evaluations count only where its file is known to be the same.
        if key == "conditioned" and recorded is None:
            continue
        wanted = [f"conditioned_s{s:g}" for s in args["curve"]] if key == "conditioned" else [key]
        for name in wanted:
            found = earlier["per_image"].get(name)
            if found is not None and [row["name"] for row in found] == names:
                rows[name] = found
    return rows


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def strictly_decreasing(values: list[float]) -> bool:
    return all(a > b for a, b in zip(values, values[1:], strict=False))


def main(argv: list[str]) -> int:
    args, extra = parse_args(argv)
    if args["threads"] > 0:
        torch.set_num_threads(args["threads"])
    trainings = recipes(args, extra)
    ckpts = ensure_trained(trainings, args["steps"], args["jobs"], args["threads"])
    # ensure_trained returns each recipe's checkpoint of exactly its budget.
    budget = {t.key: t.steps or args["steps"] for t in trainings}

    photos, skipped = load_photos(args["val"], args["size"], args["limit"])
    for line in skipped:
        print(line, file=sys.stderr)
    if not photos:
        raise UsageError(f"val={args['val']}: no readable photos")
    style_cfg = StyleConfig(name=args["style"], path=args["style_path"], size=args["size"])
    style_image = load_style_image(style_cfg, default_data_dir())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    evaluator = Evaluator(style_image, alpha=args["alpha"], beta=args["beta"], device=device)

    # Each checkpoint is read once: the generators (on the device) and the runs' configs.
    models = {key: load_generator(ckpt) for key, ckpt in ckpts.items()}
    configs = {key: config for key, (_, config) in models.items()}
    generators = {key: generator.to(device) for key, (generator, _) in models.items()}
    conditioned = generators["conditioned"]
    earlier = earlier_evaluations(args, ckpts, budget, [p.name for p in photos])
    curve_rows: dict[float, list[dict]] = {}
    for s in args["curve"]:
        if f"conditioned_s{s:g}" in earlier:
            print(f"== conditioned at strength {s:g}: reusing its evaluation from {args['reuse']}")
            curve_rows[s] = earlier[f"conditioned_s{s:g}"]
            continue
        print(f"== conditioned at strength {s:g} (α={alpha_at(args, s):.4g}): {len(photos)} photos")
        curve_rows[s], _ = evaluate_one_pass(photos, one_pass(conditioned, device, s), evaluator)
    dedicated_rows: dict[float, list[dict]] = {}
    for s in args["points"]:
        key = dedicated_key(alpha_at(args, s))
        if key in earlier:
            print(f"== {key}: reusing its evaluation from {args['reuse']}")
            dedicated_rows[s] = earlier[key]
            continue
        print(f"== {key}: {len(photos)} photos")
        dedicated_rows[s], _ = evaluate_one_pass(
            photos, one_pass(generators[key], device), evaluator
        )

    means = {s: mean_metrics(rows) for s, rows in curve_rows.items()}
    dedicated_means = {s: mean_metrics(rows) for s, rows in dedicated_rows.items()}
    n, tol = len(photos), args["tolerance"]
    columns = [
        ("style", "L_style ↓"),
        ("content", "L_content ↓"),
        ("swd", "SWD ↓"),
        ("total", "total ↓"),
        ("ssim", "SSIM ↑"),
        ("edges", "edges ↑"),
    ]
    match_rows, checks = [], {}
    for s in args["points"]:
        alpha = alpha_at(args, s)
        ratios = {m: ratio(means[s][m], dedicated_means[s][m]) for m in MATCHED}
        within = {m: r is not None and abs(r - 1.0) <= tol for m, r in ratios.items()}
        checks[s] = {"ratios": ratios, "within": within}
        match_rows += [
            (f"s={s:g}: conditioned", means[s]),
            (f"α={alpha:.4g}: dedicated", dedicated_means[s]),
            (
                f"ratio (within {tol:.0%}?)",
                {
                    m: f"{ratios[m]:.3f} {'yes' if within[m] else 'NO'}"
                    if ratios[m] is not None
                    else None
                    for m in MATCHED
                },
            ),
        ]
    curve_style = [means[s]["style"] for s in args["curve"]]
    curve_content = [means[s]["content"] for s in args["curve"]]
    monotonic = strictly_decreasing(curve_style)
    per_photo = sum(
        strictly_decreasing([curve_rows[s][i]["style"] for s in args["curve"]]) for i in range(n)
    )
    curve_rows_table = [(f"s={s:g} (α={alpha_at(args, s):.4g})", means[s]) for s in args["curve"]]
    all_within = all(all(c["within"].values()) for c in checks.values())
    summary = (
        f"Conditioned vs dedicated: {'every' if all_within else 'NOT every'} style loss, "
        f"content loss and SWD within {tol:.0%} at the {len(args['points'])} points; conditioned "
        f"style loss {'strictly falls' if monotonic else 'does NOT strictly fall'} as the "
        f"strength rises over {len(args['curve'])} strengths "
        f"({', '.join(f'{v:.4g}' for v in curve_style)}; on {per_photo} of {n} photos "
        f"alone); content loss {', '.join(f'{v:.4g}' for v in curve_content)}.\n"
    )
    note = (
        f"Reference: caffe VGG19, α={args['alpha']:g}, β={args['beta']:g}, {n} photos of "
        f"{args['val']} at {args['size']} px long side, {torch.get_num_threads()} CPU threads on "
        f"{device}; {budget_words(args)} with "
        f"experiment={args['recipe']} (conditioned: run {args['conditioned']}, α from "
        f"{args['alpha_min']:g} to {args['alpha_max']:g}, adversarial share balanced per "
        f"image, perceptual balance alpha, {DRAWS}).\n\n"
    )
    print("== each model on the objective it was trained for, on crops of the val photos")
    objectives = training_objectives(args, generators, configs["conditioned"], photos, device)
    crop = configs["conditioned"]["data"]["image_size"]
    objective_table = (
        f"\nEach model on the objective it was trained for (α·L_style + β·L_content, its own "
        f"α; {2 * n} crops of {crop} px, the training size, from the same photos):\n\n"
        "| | conditioned | dedicated | ratio | conditioned lower on |\n"
        "|---|---:|---:|---:|---:|\n"
        + "".join(
            f"| s={key} vs α={o['alpha']:.4g} | {o['conditioned']:.4g} | {o['dedicated']:.4g} | "
            f"{o['ratio']:.3f} | {o['conditioned_lower']} of {o['crops']} crops |\n"
            for key, o in objectives.items()
        )
    )
    table = (
        note
        + summary
        + "\n"
        + format_table(match_rows, columns)
        + objective_table
        + "\nThe conditioned model along its curve:\n\n"
        + format_table(curve_rows_table, columns)
    )

    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    sheet_photos, skipped = (
        load_photos(args["sheet"], args["size"], args["sheet_photos"])
        if args["sheet"] is not None
        else (photos[: args["sheet_photos"]], [])
    )
    for line in skipped:
        print(line, file=sys.stderr)
    if sheet_photos:
        save_image(
            make_grid(
                sheet(args, generators, sheet_photos, device),
                height=args["sheet_height"],
                same_width=True,
            ),
            out / "strength_sheet.png",
        )
    results = {
        "args": args,
        "train_overrides": extra,
        "checkpoints": {key: str(p) for key, p in ckpts.items()},
        "checkpoint_stamps": {key: stamp(p) for key, p in ckpts.items()},
        "trained_steps": budget,
        "configs": configs,
        "reference": reference_description()
        | {"alpha": args["alpha"], "beta": args["beta"], "size": args["size"]},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "conditioned_curve": {f"{s:g}": means[s] for s in args["curve"]},
        "dedicated": {f"{s:g}": dedicated_means[s] for s in args["points"]},
        "match": {f"{s:g}": c for s, c in checks.items()},
        "training_objective": objectives,
        "all_within_tolerance": all_within,
        "style_loss_monotonic": monotonic,
        "style_loss_monotonic_photos": per_photo,
        "per_image": {
            **{f"conditioned_s{s:g}": rows for s, rows in curve_rows.items()},
            **{dedicated_key(alpha_at(args, s)): rows for s, rows in dedicated_rows.items()},
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(table)
    print(table)
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'strength_sheet.png'}")
    return 0


def training_crops(photos: list, crop: int) -> torch.Tensor:
    """Two crops of `crop` px per photo (the centre, and the centre of its top-left quarter),
    the size the models were trained on."""
    crops = []
    for photo in photos:
        image = photo.content
        h, w = image.shape[-2:]
        c = min(crop, h, w)
        for cy, cx in ((h // 2, w // 2), (h // 4, w // 4)):
            y, x = min(max(cy - c // 2, 0), h - c), min(max(cx - c // 2, 0), w - c)
            crops.append(F.interpolate(image[..., y : y + c, x : x + c], size=(crop, crop)))
    return torch.cat(crops)


@torch.no_grad()
def training_objectives(
    args: dict, generators: dict, config: dict, photos: list, device: torch.device
) -> dict:
    """Each model on the objective it was trained for, α·L_style + β·L_content with the run's
    own loss settings and painting size, on crops of the val photos at the training crop size:
    the conditioned model at strength s with α(s), the dedicated one at its α. Per point: both
    means, their ratio, and on how many crops the conditioned model's is lower. `config`: the
    conditioned run's."""
    loss_cfg = to_dataclass(config["loss"], LossConfig)
    criterion = build_criterion(loss_cfg).to(device)
    style_cfg = StyleConfig(
        name=args["style"], path=args["style_path"], size=config["style"]["size"]
    )
    criterion.set_style(load_style_image(style_cfg, default_data_dir()).to(device))
    crops = training_crops(photos, config["data"]["image_size"]).to(device)
    target = criterion.content_features(crops)

    def objective(generator, alpha: float, strength: float | None) -> torch.Tensor:
        values = []
        for i in range(0, len(crops), 8):
            batch = crops[i : i + 8]
            out = generator(batch, strength) if strength is not None else generator(batch)
            style, content = criterion(out, target[i : i + 8], reduce=False)
            values.append(alpha * style + loss_cfg.beta * content)
        return torch.cat(values).double().cpu()

    results = {}
    for s in args["points"]:
        alpha = alpha_at(args, s)
        key = dedicated_key(alpha)
        ours = objective(generators["conditioned"], alpha, s)
        theirs = objective(generators[key], alpha, None)
        results[f"{s:g}"] = {
            "alpha": alpha,
            "conditioned": float(ours.mean()),
            "dedicated": float(theirs.mean()),
            "ratio": float(ours.mean() / theirs.mean()),
            "conditioned_lower": int((ours < theirs).sum()),
            "crops": len(ours),
        }
    return results


def sheet(args: dict, generators: dict, photos: list, device: torch.device) -> list:
    """Rows: photo | conditioned at each curve strength, the dedicated model after its point;
    each output is labelled."""
    conditioned = generators["conditioned"]
    dedicated = {
        s: one_pass(generators[dedicated_key(alpha_at(args, s))], device) for s in args["points"]
    }
    rows = []
    for photo in photos:
        row = [caption(photo.content, "photo")]
        for s in args["curve"]:
            output = one_pass(conditioned, device, s)(photo.content)
            row.append(caption(output, f"s={s:g}"))
            if s in dedicated:
                row.append(
                    caption(dedicated[s](photo.content), f"alpha={alpha_at(args, s):.4g} model")
                )
        rows.append(row)
    return rows


if __name__ == "__main__":
    with fail_cleanly():
        sys.exit(main(sys.argv[1:]))
