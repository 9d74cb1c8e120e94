"""Stylize files, folders, globs or a video: in one forward pass with a trained generator
(ckpt=: a training checkpoint, or an exported .onnx / .pt2 model), or by the per-image
optimization of the seed's method (no ckpt). Each output is written atomically; an existing
output is skipped unless overwrite=true, and an input is never overwritten.

Folders run as a pipeline: photos are decoded ahead in threads, stylized in batches of equal
size, and encoded in a thread while the next batch runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.commands.overrides import check, register, run_hydra
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import StylizeConfig
from gan_stylizer.config.validate import parse_strengths, validate_stylize
from gan_stylizer.devices import pick_device
from gan_stylizer.errors import ConfigError, display_path
from gan_stylizer.inference.methods import (
    OPTIMIZATION_SIZE,
    Method,
    _one_pass,
    _optimization,
    _recolor,
    _variants,
    optimization_label,
)
from gan_stylizer.inference.outputs import _real_path, plan_outputs, plan_video_output
from gan_stylizer.inference.pipeline import Tally, _run_images, _run_video
from gan_stylizer.io.atomic import sweep
from gan_stylizer.io.images import SAVE_SUFFIXES
from gan_stylizer.io.inputs import collect_inputs, is_video


def run(cfg: StylizeConfig) -> int:
    """Stylize every input; returns the number of inputs that failed."""
    validate_stylize(cfg)
    pattern = any(ch in cfg.input for ch in "*?[")
    single_video = is_video(cfg.input) and not pattern and not Path(cfg.input).is_dir()
    if single_video and not cfg.ckpt:
        raise ConfigError(
            "a video needs ckpt= (a trained generator); the optimization is per image"
        )
    if single_video and not Path(cfg.input).is_file():
        raise ConfigError(f"input={cfg.input}: no such video file")
    files, root = ([Path(cfg.input)], None) if single_video else collect_inputs(cfg.input, True)
    device = pick_device(cfg.device)
    # The model first (its name labels the outputs); the optimization's painting and VGG only
    # once the outputs are known to be writable names.
    method = _one_pass(cfg, device) if cfg.ckpt else None
    label = method.label if method is not None else optimization_label(cfg)
    size = cfg.size
    if cfg.size is None and cfg.scale is None and not cfg.ckpt:
        size = OPTIMIZATION_SIZE
    if single_video:
        pairs = [(files[0], plan_video_output(files[0], cfg.output, label))]
    else:
        pairs = plan_outputs(files, root, cfg.output, label)
    check_output_names(pairs, cfg.output)  # before any image is stylized
    if method is None:
        method = _optimization(cfg, device)
    for folder in sorted({dst.parent for _, dst in pairs}):
        for line in sweep(folder):
            print(display_path(line))
    print(f"{method.label}: {method.description}")

    variants = _variants(method, parse_strengths(cfg.strength), cfg.grid)
    tally = Tally()
    inputs = {_real_path(src) for src, _ in pairs}
    for suffix, variant in variants:
        named = [(src, dst.with_name(f"{dst.stem}{suffix}{dst.suffix}")) for src, dst in pairs]
        _run_variant(named, inputs, variant, cfg, size, tally)
    if len(pairs) * len(variants) > 1 or tally.failed or tally.skipped:
        print(f"done {tally.done}, skipped {tally.skipped}, failed {tally.failed}")
    return tally.failed


def check_output_names(pairs: list[tuple[Path, Path]], output: str | None) -> None:
    """Every output's format is known from its suffix (an image's or a video's), or the run
    stops here, before it stylizes anything."""
    for src, dst in pairs:
        if is_video(src):
            continue  # plan_video_output checked it
        if dst.suffix.lower() not in SAVE_SUFFIXES:
            what = f"suffix {dst.suffix!r}" if dst.suffix else "no suffix"
            hint = "; a folder? end it with /" if not dst.suffix else ""
            raise ConfigError(
                f"output={output}: {dst.name} has {what}: an image is one of "
                f"{', '.join(SAVE_SUFFIXES)}{hint}"
            )


def _run_variant(pairs, inputs: set[str], method: Method, cfg, size, tally: Tally) -> None:
    images, videos = [], []
    for src, dst in pairs:
        try:
            exists = dst.exists()
        except OSError as err:  # e.g. the output name is longer than the file system allows
            tally.fail(f"error: {dst}: cannot write there ({err.strerror}); choose output=")
            continue
        if _real_path(dst) in inputs:
            tally.fail(f"error: {dst}: output would overwrite an input; choose another output=")
        elif is_video(src) and not cfg.ckpt:
            tally.skip(f"skip: {src} is a video; videos need ckpt= (a trained generator)")
        elif exists and not cfg.overwrite:
            tally.skip(f"skip: {dst} exists (made by {method.label}; overwrite=true replaces it)")
        else:
            (videos if is_video(src) else images).append((src, dst))
    if images:
        batch_size = cfg.batch_size if method.batch else 1
        recolor = _recolor if method.recolor else None
        _run_images(images, method.apply, size, cfg.scale, batch_size, recolor, tally)
    for pair in videos:
        _run_video(pair, method, cfg, size, tally)


GROUPS = ("style",)
# file names: reserved characters in them get the quoting
PATH_KEYS = ("input", "output", "ckpt", "style.path", "data_dir")
register(
    "stylize",
    StylizeConfig,
    GROUPS,
    usage=(
        "python stylize.py input=PHOTO|FOLDER|GLOB|VIDEO "
        "[ckpt=ZOO_NAME|last.ckpt|model.onnx] [key=value ...]"
    ),
    about=(
        "Stylizes in one pass with a trained generator (ckpt=: a zoo name, see "
        "scripts/models.py, a checkpoint or an export), or without ckpt= by the per-image"
        " optimization of the painting style=."
    ),
)


@hydra.main(config_path="../configs", config_name="stylize", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with fail_cleanly():
        failures = run(to_dataclass(cfg, StylizeConfig))
        if failures:
            raise SystemExit(1)


def _strength_list_as_hydra_list(argv: list[str]) -> list[str]:
    """strength=0,0.5,1 -> strength=[0,0.5,1]: outside a sweep (-m), Hydra refuses a bare
    comma-separated value as ambiguous; here it can only mean a list of strengths."""
    return [
        f"strength=[{arg.partition('=')[2]}]"
        if arg.startswith("strength=") and "," in arg and "[" not in arg
        else arg
        for arg in argv
    ]


def main() -> None:
    """The command line: checked against the schema, then Hydra."""
    sys.argv[1:] = _strength_list_as_hydra_list(sys.argv[1:])
    check(sys.argv[1:], StylizeConfig, GROUPS, PATH_KEYS)
    run_hydra(_hydra_main)


if __name__ == "__main__":
    main()
