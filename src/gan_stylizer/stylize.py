"""Stylize files, folders or globs: in one forward pass with a trained generator (ckpt=), or by
the per-image optimization of the seed's method (no ckpt). Each output is written atomically;
an existing output is skipped unless overwrite=true, and an input is never overwritten."""

from __future__ import annotations

import glob
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gan_stylizer.checkpoint import load_generator
from gan_stylizer.config import ConfigError, StylizeConfig, validate_stylize
from gan_stylizer.data import list_images
from gan_stylizer.images import ImageError, load_image, preserve_color, save_image
from gan_stylizer.optimize import stylize_by_optimization

OPTIMIZATION_SIZE = 512  # default long side for the (slow) optimization


def pick_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device=mps but MPS is not available; use device=auto")
    return torch.device(name)


def collect_inputs(spec: str) -> tuple[list[Path], Path | None]:
    """(input files, the folder outputs mirror) for a file, a folder (recursive) or a glob."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise ConfigError(f"input={spec}: the folder holds no images")
        return files, path
    if path.exists():
        return [path], None
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise ConfigError(f"input={spec}: the pattern matches no files")
        return files, None
    raise ConfigError(f"input={spec}: no such file or folder")


def plan_outputs(
    files: list[Path], root: Path | None, output: str | None, label: str
) -> list[tuple[Path, Path]]:
    """(input, output) pairs. One file: output= is the file (or a folder to put it in);
    default <stem>_<label>.png beside it. Several: output= is a folder mirroring the inputs'
    tree; default <folder>_<label>/ beside an input folder, or ./stylized_<label>/ for a glob."""
    if len(files) == 1 and root is None:
        src = files[0]
        if output is None:
            return [(src, src.with_name(f"{src.stem}_{label}.png"))]
        out = Path(output).expanduser()
        if out.is_dir() or output.endswith(("/", "\\")):
            out = out / f"{src.stem}_{label}.png"
        return [(src, out)]
    if output is not None:
        out_root = Path(output).expanduser()
        if out_root.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}:
            raise ConfigError(f"output={output}: several inputs need an output folder, not a file")
    elif root is not None:
        out_root = root.with_name(f"{root.name}_{label}")
    else:
        out_root = Path.cwd() / f"stylized_{label}"
    pairs = []
    used: set[Path] = set()
    for src in files:
        rel = src.relative_to(root) if root is not None else Path(src.name)
        dst = (out_root / rel).with_suffix(".png")
        if dst in used:  # a.jpg and a.png in one folder
            dst = dst.with_name(f"{rel.stem}_{rel.suffix.lstrip('.')}.png")
        used.add(dst)
        pairs.append((src, dst))
    return pairs


def _one_pass(cfg: StylizeConfig, device: torch.device) -> tuple[Callable, str]:
    generator, run_config = load_generator(cfg.ckpt)
    generator = generator.to(device)
    label = str(run_config.get("name") or run_config.get("style", {}).get("name") or "stylized")

    @torch.no_grad()
    def apply(content: torch.Tensor) -> torch.Tensor:
        return generator(content.to(device)).float().cpu()

    return apply, label


def _optimization(cfg: StylizeConfig, device: torch.device) -> tuple[Callable, str]:
    from gan_stylizer.train import build_criterion, data_dir_of, load_style_image

    style_image = load_style_image(cfg.style, data_dir_of(cfg.data_dir)).to(device)
    criterion = build_criterion(cfg.loss).to(device)

    def apply(content: torch.Tensor) -> torch.Tensor:
        result = stylize_by_optimization(
            content.to(device),
            style_image,
            criterion,
            preserve_colors=cfg.preserve_color,
            alpha=cfg.loss.alpha,
            beta=cfg.loss.beta,
            tv=cfg.loss.tv,
            steps=cfg.steps,
            optimizer=cfg.optimizer,
            lr=cfg.lr,
            init=cfg.init,
            tol=cfg.tol,
            seed=cfg.seed,
            progress=sys.stderr.isatty(),
        )
        f = result.final
        print(
            f"  {result.steps} steps, {result.seconds / result.steps:.2f} s/step, "
            f"style {f['style']:.4g}, content {f['content']:.4g}, total {f['total']:.4g}"
        )
        return result.image.cpu()

    return apply, cfg.style.name


def run(cfg: StylizeConfig) -> int:
    """Stylize every input; returns the number of inputs that failed."""
    validate_stylize(cfg)
    files, root = collect_inputs(cfg.input)
    device = pick_device(cfg.device)
    apply, label = _one_pass(cfg, device) if cfg.ckpt else _optimization(cfg, device)
    size = cfg.size if cfg.size is not None else (None if cfg.ckpt else OPTIMIZATION_SIZE)
    pairs = plan_outputs(files, root, cfg.output, label)
    inputs = {src.resolve() for src, _ in pairs}

    done = skipped = failed = 0
    for src, dst in pairs:
        if dst.resolve() in inputs:
            print(
                f"error: {dst}: output would overwrite an input; choose another output=",
                file=sys.stderr,
            )
            failed += 1
            continue
        if dst.exists() and not cfg.overwrite:
            print(f"skip: {dst} exists (overwrite=true replaces it)")
            skipped += 1
            continue
        try:
            content = load_image(src, size=size)
            start = time.perf_counter()
            stylized = apply(content)
            if cfg.preserve_color and cfg.ckpt:
                stylized = preserve_color(content, stylized)
            seconds = time.perf_counter() - start
            save_image(stylized, dst)
        except ImageError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        except (RuntimeError, FloatingPointError) as err:  # out of memory, diverged optimization
            reason = " ".join(str(err).split())[:200]
            print(
                f"error: {src}: could not stylize: {reason} (try a smaller size=)", file=sys.stderr
            )
            failed += 1
            continue
        h, w = stylized.shape[-2:]
        print(f"{src} -> {dst} ({w}x{h}, {seconds:.2f} s)")
        done += 1
    if len(pairs) > 1 or failed or skipped:
        print(f"done {done}, skipped {skipped}, failed {failed}")
    return failed
