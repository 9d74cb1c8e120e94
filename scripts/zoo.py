"""The model zoo's maintenance: turn trained runs into zoo models, and regenerate its docs.

    python scripts/zoo.py build ckpt=outputs/<run>/checkpoints/last.ckpt name=starry_night
        val=../shared/data/content/val [size=512] [limit=N] [eq_steps=30] [eq_limit=10]
        [hardware="2-core AVX2 AMD EPYC, 1 thread"] [out=src/gan_stylizer/pretrained]
    python scripts/zoo.py report [out=docs] [data_dir=DIR]

build: the run's EMA generator as <out>/<name>.safetensors (fp16) and <name>.json (the manifest:
painting and its sha256, recipe = every key that differs from the defaults, steps, hardware,
commit, the weights' sha256, and the scores on val= under the project's ruler: style and content
loss, SWD, palette distance (and the photos' own, unstylized), SSIM and edges at size= px, and
the L-BFGS steps of the optimization that reach the same total loss, on the first eq_limit photos
with at most eq_steps steps).
report: docs/zoo.md (one table from the manifests) and docs/zoo/gallery.jpg (the public-domain /
CC0 photos that scikit-image ships, by every zoo model at its default strength, labelled; above
them the paintings, where data_dir=/styles holds them all).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from gan_stylizer import zoo
from gan_stylizer.checkpoints import load_checkpoint, load_generator
from gan_stylizer.config.schema import StyleConfig, TrainConfig
from gan_stylizer.errors import CheckpointError, ConfigError, ImageError, StyleError
from gan_stylizer.evaluation.ruler import Evaluator, mean_metrics
from gan_stylizer.evaluation.runners import evaluate_one_pass, load_photos, one_pass
from gan_stylizer.inference.onepass import OnePass
from gan_stylizer.io.images import load_image, pil_to_tensor, resize_long_side, save_image
from gan_stylizer.io.sheets import caption, make_grid
from gan_stylizer.plain import to_plain
from gan_stylizer.styles import REGISTRY, data_dir_of, load_style_image, resolve_style, sha256_file
from gan_stylizer.training.records import session_info
from gan_stylizer.training.resume import flat_config

REPO = Path(__file__).resolve().parents[1]
PATH_KEYS = {"data.root", "data.val_root", "style.path"}
# Not the recipe: where files were, how often to write them, the run's own name.
SESSION = {
    "name", "data_dir", "ckpt_path", "data.num_workers", "trainer.threads",
    "trainer.image_every", "trainer.ckpt_every", "trainer.keep_every", "trainer.log_every",
}  # fmt: skip
# Options of runs made before the dial's settings were built in, at the values now built in.
BUILT_IN = {
    "loss.adv_balance": "auto",
    "loss.perceptual_balance": "auto",
    "loss.strength_sampling": "arcsine",
    "loss.strength_ends": 0.3,
    "loss.strength_margin": 0.1,
    "trainer.lr_strength_mult": 1.0,
}


def recipe(config: dict) -> dict:
    """Every key of a run's config that differs from the defaults (paths by their last two
    parts); a run trained with a retired dial option at another value than the one built in
    now is refused."""
    defaults = flat_config(to_plain(TrainConfig()))
    out = {}
    for key, value in flat_config(config).items():
        if key in SESSION or defaults.get(key, object()) == value or BUILT_IN.get(key) == value:
            continue
        if key in BUILT_IN:
            raise ConfigError(f"trained with {key}={value}, not the dial's built-in setting")
        out[key] = "/".join(Path(str(value)).parts[-2:]) if key in PATH_KEYS and value else value
    return out


def run_commit(ckpt_path: str) -> str:
    """The commit the run was trained at (its run_info.json), else this checkout's."""
    info = Path(ckpt_path).resolve().parent.parent / "run_info.json"
    try:
        commit = json.loads(info.read_text()).get("git_commit")
    except (OSError, ValueError):
        commit = None
    commit = commit or session_info()["git_commit"]
    return str(commit)[:7] if commit else "unknown"


def parse(argv: list[str], defaults: dict) -> dict:
    args = dict(defaults)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in args:
            known = list(args)
            raise ConfigError(f"unknown argument {item!r}; expected key=value with key in {known}")
        args[key] = value
    return args


BUILD = {
    "ckpt": None,
    "name": None,
    "val": None,
    "size": "512",
    "limit": "",
    "eq_steps": "30",
    "eq_limit": "10",
    "hardware": "",
    "out": str(REPO / "src/gan_stylizer/pretrained"),
    "scores_from": "",  # an earlier manifest of the same weights: its scores, not measured again
}


def build(argv: list[str]) -> None:
    args = parse(argv, BUILD)
    if not (args["ckpt"] and args["name"] and (args["val"] or args["scores_from"])):
        raise ConfigError("build needs ckpt=, name= and val= (or scores_from=)")
    ckpt = load_checkpoint(args["ckpt"])
    config = ckpt["hyper_parameters"]["config"]
    generator, _ = load_generator(args["ckpt"])
    if not generator.conditioned:
        raise ConfigError(f"{args['ckpt']}: a zoo model is a strength dial (model=conditioned)")
    style = config["style"]
    spec = REGISTRY.get(style["name"])
    if args["scores_from"]:
        scores = json.loads(Path(args["scores_from"]).read_text())["scores"]
    else:
        scores = score(generator, style, config, args)
    manifest = {
        "painting": {
            "name": style["name"],
            "title": spec.title if spec else style["name"],
            "sha256": spec.sha256 if spec else sha256_file(style["path"]),
        },
        "generator": dict(generator.config),
        "default_strength": 0.5,
        "recipe": recipe(config),
        # loss.calibrate's factor on the style term, from the painting (1: none)
        "style_scale": float(ckpt["hyper_parameters"].get("style_scale", 1.0)),
        "steps": int(ckpt["gan_stylizer"]["g_step"]),
        "hardware": args["hardware"],
        "commit": run_commit(args["ckpt"]),
        "scores": scores,
    }
    weights, info = zoo.save(generator, args["out"], args["name"], manifest)
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) and {info}")


def score(generator, style: dict, config: dict, args: dict) -> dict:
    """The model at its default strength under the ruler, on val= at size= px; and the L-BFGS
    steps that reach the same total, on the first eq_limit photos."""
    size = int(args["size"])
    painting = load_style_image(
        StyleConfig(name=style["name"], path=style.get("path"), size=size),
        data_dir_of(config.get("data_dir")),
    )
    photos, _ = load_photos(args["val"], size, int(args["limit"]) if args["limit"] else None)
    evaluator = Evaluator(painting, alpha=50.0, beta=1.0)
    print(f"{args['name']}: scoring on {len(photos)} photos at {size} px", flush=True)
    stylize = one_pass(generator, torch.device("cpu"))
    rows, _ = evaluate_one_pass(photos, stylize, evaluator, progress=lambda s: None)
    eq_rows, _ = evaluate_one_pass(
        photos[: int(args["eq_limit"])],
        stylize,
        evaluator,
        equal_quality_steps=int(args["eq_steps"]),
        progress=lambda s: None,
    )
    mean, eq = mean_metrics(rows), mean_metrics(eq_rows)
    return {
        "photos": len(rows),
        "val": Path(args["val"]).name,
        "size": size,
        "ruler": "caffe VGG19, alpha=50, beta=1, the painting at the photos' size",
        "strength": 0.5,
        **{k: mean[k] for k in ("style", "content", "total", "swd", "palette", "ssim", "edges")},
        "seconds": mean["seconds"],
        # the unstylized photos' own distance to the painting's colours: the palette's scale
        "photo_palette": sum(evaluator.palette(p.content) for p in photos) / len(photos),
        "eq_photos": len(eq_rows),
        "eq_max_steps": int(args["eq_steps"]),
        "eq_reached": sum(r.get("eq_steps") is not None for r in eq_rows),
        "eq_steps": eq.get("eq_steps"),
    }


def sample_photos() -> list[tuple[str, torch.Tensor]]:
    from skimage import data

    return [(name, pil_to_tensor_np(getattr(data, name)())) for name in ("astronaut", "chelsea")]


def pil_to_tensor_np(array) -> torch.Tensor:
    from PIL import Image

    return resize_long_side(pil_to_tensor(Image.fromarray(array)), 384)


def paintings_row(models, data_dir: str | None, size: int) -> list[torch.Tensor] | None:
    """Each zoo model's painting, its centre square at `size` px, captioned, or None unless
    every one is cached in data_dir/styles (verified against the registry's sha256; nothing is
    downloaded)."""
    row = []
    for model in models:
        name = model.manifest["painting"]["name"]
        try:
            path = resolve_style(name, None, data_dir_of(data_dir) / "styles", download=False)
        except StyleError:
            return None
        painting = load_image(path, size=4 * size)
        side = min(painting.shape[-2:])  # the centre square, so the row's columns line up
        top, left = (painting.shape[-2] - side) // 2, (painting.shape[-1] - side) // 2
        square = painting[..., top : top + side, left : left + side]
        row.append(caption(resize_long_side(square, size), name))
    return row


def report(argv: list[str]) -> None:
    args = parse(argv, {"out": str(REPO / "docs"), "data_dir": ""})
    out = Path(args["out"])
    models = [zoo.describe(name) for name in zoo.names()]
    if not models:
        raise ConfigError("the zoo is empty: build models first")
    photos = sample_photos()
    rows = []
    paintings = paintings_row(models, args["data_dir"] or None, 384)
    if paintings:
        blank = torch.ones(1, 3, 384, 384)
        rows.append([caption(blank, "the painting"), *paintings])
    for label, photo in photos:
        row = [caption(photo, label)]
        for model in models:
            generator, _ = zoo.load(model.name)
            row.append(caption(OnePass(generator)(photo), model.name))
        rows.append(row)
    (out / "zoo").mkdir(parents=True, exist_ok=True)
    gallery = save_image(
        make_grid(rows, height=256, same_width=True), out / "zoo" / "gallery.jpg", quality=90
    )
    lines = [
        "# The model zoo",
        "",
        "Pretrained strength-dial stylizers installed with the package: "
        "`python stylize.py ckpt=<name> input=photo.jpg [strength=0..1]`; "
        "`python scripts/models.py` lists them. Regenerate this page and the gallery with "
        "`python scripts/zoo.py report`; each model was made by `python scripts/zoo.py build ...` "
        "from a training run (its manifest, `src/gan_stylizer/pretrained/<name>.json`, has the "
        "recipe, the steps, the hardware and the commit).",
        "",
        "![the zoo on scikit-image's astronaut (NASA, public domain) and chelsea (CC0)]"
        "(zoo/gallery.jpg)",
        "",
        "Scores at the default strength (0.5) on the validation photos at 512 px under the "
        "project's ruler (caffe VGG19, α = 50, β = 1; lower is better for the losses and the "
        "SWD, higher for SSIM and edges). *Palette*: the sliced Wasserstein distance in CIELab "
        "(ΔE) between the output's colours and the painting's; in brackets the photos' own, "
        "unstylized. *Eq. L-BFGS steps*: the mean number of steps the "
        "per-image optimization needs to reach the same total loss, over the photos where it "
        "did within the budget.",
        "",
        "*Style ×*: the factor `loss.calibrate` put on the style term, calibrated from the "
        "painting (docs/training.md). Models trained before its second stage (2026-12-06) carry "
        "the first stage's factor alone (the pull's); the second stage would raise it by 1-9% for "
        "composition_vii, great_wave and starry_night.",
        "",
        "| model | painting | steps | style × | L_style | L_content | SWD | palette (photos) | "
        "SSIM | edges | s/image | eq. L-BFGS steps (reached / photos, budget) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model in models:
        s = model.manifest.get("scores", {})
        eq = s.get("eq_steps")
        lines.append(
            f"| {model.name} | {model.title} | {model.steps} | "
            f"{model.manifest.get('style_scale', 1.0):.3g} | {s.get('style', 0):.3g} | "
            f"{s.get('content', 0):.3g} | {s.get('swd', 0):.1f} | {palette(s)} | "
            f"{s.get('ssim', 0):.3f} | "
            f"{s.get('edges', 0):.3f} | {s.get('seconds', 0):.2f} | "
            f"{'–' if eq is None else f'{eq:.1f}'} ({s.get('eq_reached')}/{s.get('eq_photos')}, "
            f"{s.get('eq_max_steps')}) |"
        )
    lines += ["", *shared_lines("Trained on", {m.name: m.manifest.get("hardware") for m in models})]
    lines += recipe_lines({m.name: m.manifest.get("recipe", {}) for m in models})
    (out / "zoo.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out / 'zoo.md'} and {gallery}")


def models_by_value(values: dict[str, str]) -> dict[str, list[str]]:
    """{value: the models that have it}, in the models' order."""
    groups: dict[str, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(value, []).append(name)
    return groups


def shared_lines(label: str, values: dict[str, str | None]) -> list[str]:
    """'label: value.' where every model shares it, else one line per value with its models."""
    groups = models_by_value({name: value or "see the manifest" for name, value in values.items()})
    if len(groups) == 1:
        return [f"{label}: {next(iter(groups))}.", ""]
    return [f"{label}:", *(f"- {', '.join(n)}: {v}." for v, n in groups.items()), ""]


def recipe_lines(recipes: dict[str, dict]) -> list[str]:
    """The training command the manifests share, and each key where they differ with each
    model's value."""
    recipes = {n: {k: v for k, v in r.items() if k != "style.name"} for n, r in recipes.items()}
    first = next(iter(recipes.values()))
    common = {
        k: v for k, v in first.items() if all(r.get(k, object()) == v for r in recipes.values())
    }
    differ = sorted({k for r in recipes.values() for k in r} - set(common))

    def value(v) -> str:
        return "(default)" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    keys = " ".join(f"{k}={value(v)}" for k, v in common.items())
    lines = [
        "The recipe (every key that differs from the defaults; data paths shortened to their "
        f"last two parts): `python train.py style=<name> {keys}`."
    ]
    for key in differ:
        groups = models_by_value({name: value(r.get(key)) for name, r in recipes.items()})
        each = "; ".join(f"{', '.join(n)}: {v}" for v, n in groups.items())
        lines.append(f"- `{key}` differs: {each}.")
    return [*lines, ""]


def palette(scores: dict) -> str:
    """'12.3 (31.0)': the model's palette distance and the photos' own; '–' where not scored."""
    if "palette" not in scores:
        return "–"
    photos = scores.get("photo_palette")
    return f"{scores['palette']:.1f} ({'–' if photos is None else f'{photos:.1f}'})"


def main(argv: list[str]) -> int:
    commands = {"build": build, "report": report}
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        commands[argv[0]](argv[1:])
    except (ConfigError, CheckpointError, ImageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
