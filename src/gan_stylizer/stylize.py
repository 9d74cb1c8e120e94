"""Stylize files, folders, globs or a video: in one forward pass with a trained generator
(ckpt=: a training checkpoint, or an exported .onnx / .pt2 model), or by the per-image
optimization of the seed's method (no ckpt). Each output is written atomically; an existing
output is skipped unless overwrite=true, and an input is never overwritten.

Folders run as a pipeline: photos are decoded ahead in threads, stylized in batches of equal
size, and encoded in a thread while the next batch runs.
"""

from __future__ import annotations

import functools
import glob
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from gan_stylizer.checkpoint import load_generator
from gan_stylizer.config import ConfigError, StylizeConfig, parse_strengths, validate_stylize
from gan_stylizer.export import EXPORTED_SUFFIXES, load_exported
from gan_stylizer.images import (
    ImageError,
    display_path,
    list_files,
    list_images,
    pil_to_tensor,
    preserve_color,
    read_rgb,
    resize_pil,
    save_image,
    tensor_to_pil,
)
from gan_stylizer.inference import AUTO_TILE_PIXELS, Stylizer, resolve_dtype
from gan_stylizer.optimize import stylize_by_optimization
from gan_stylizer.video import VIDEO_EXTENSIONS, VideoError, is_video, stylize_video

OPTIMIZATION_SIZE = 512  # default long side for the (slow) optimization
GRID_GAP = 4  # white px between the strengths of a grid=true strip


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


def collect_inputs(spec: str, videos: bool = False) -> tuple[list[Path], Path | None]:
    """(input files, the folder outputs mirror) for a file, a folder (recursive) or a glob;
    with videos=True a folder's video files are inputs too."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = list_images(path)
        if videos:
            files = sorted(files + list_files(path, VIDEO_EXTENSIONS))
        if not files:
            kinds = "images or videos" if videos else "images"
            raise ConfigError(f"input={spec}: the folder holds no {kinds}")
        return files, path
    if path.exists() or path.is_symlink():  # a broken link: read_rgb says what is wrong
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
        if is_video(src):  # a glob that matched one video
            return [(src, plan_video_output(src, output, label))]
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
        suffix = src.suffix.lower() if is_video(src) else ".png"  # a video stays a video
        dst = (out_root / rel).with_suffix(suffix)
        if dst in used:  # a.jpg and a.png in one folder
            dst = dst.with_name(f"{rel.stem}_{rel.suffix.lstrip('.')}{suffix}")
        used.add(dst)
        pairs.append((src, dst))
    return pairs


@dataclass
class Method:
    """How inputs are stylized: apply([B, 3, H, W] in [0, 1]) -> float32 on the CPU."""

    apply: Callable[[torch.Tensor], torch.Tensor]
    label: str
    batch: bool  # apply takes batches (one pass) or one image at a time (optimization)
    recolor: bool  # preserve_color is applied to apply's output (one pass)
    description: str = ""
    # A conditioned generator: strength -> the apply function at that strength.
    at_strength: Callable[[float], Callable[[torch.Tensor], torch.Tensor]] | None = None


def _one_pass(cfg: StylizeConfig, device: torch.device) -> Method:
    if Path(cfg.ckpt).suffix.lower() in EXPORTED_SUFFIXES:
        apply, label = load_exported(cfg.ckpt, device)
        at = functools.partial(_at_strength, apply) if apply.conditioned else None
        return Method(
            apply, label, True, cfg.preserve_color, f"exported model, fp32 on {device}", at
        )
    generator, run_config = load_generator(cfg.ckpt)
    label = str(run_config.get("name") or run_config.get("style", {}).get("name") or "stylized")
    dtype = resolve_dtype(str(cfg.precision), device)
    try:
        stylizer = Stylizer(generator, device, dtype, cfg.tile)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"precision={cfg.precision}: cannot run on {device}: {err}") from None
    precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    at = functools.partial(_at_strength, stylizer) if generator.conditioned else None
    return Method(stylizer, label, True, cfg.preserve_color, f"{precision} on {device}", at)


def _at_strength(apply: Callable, strength: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return functools.partial(apply, strength=strength)


def _variants(
    method: Method, strengths: list[float] | None, grid: bool
) -> list[tuple[str, Method]]:
    """(file-name suffix, method) per output of each input: one, one per strength, or one strip
    of all strengths side by side (grid)."""
    if strengths is None:
        return [("", method)]
    if method.at_strength is None:
        raise ConfigError(
            "strength=: this generator has no strength input (train one with model=conditioned)"
        )
    if not grid:
        if len(strengths) == 1:
            return [("", replace(method, apply=method.at_strength(strengths[0])))]
        return [(f"_s{s:g}", replace(method, apply=method.at_strength(s))) for s in strengths]
    parts = [method.at_strength(s) for s in strengths]
    recolor = method.recolor

    def strip(content: torch.Tensor) -> torch.Tensor:
        outs = [part(content) for part in parts]
        if recolor:
            outs = [preserve_color(content, out) for out in outs]
        gap = torch.ones(*outs[0].shape[:-1], GRID_GAP)
        pieces = [piece for out in outs for piece in (out, gap)][:-1]
        return torch.cat(pieces, dim=-1)

    return [("", replace(method, apply=strip, recolor=False))]


def _optimization(cfg: StylizeConfig, device: torch.device) -> Method:
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
        tqdm.write(
            f"  {result.steps} steps, {result.seconds / result.steps:.2f} s/step, "
            f"style {f['style']:.4g}, content {f['content']:.4g}, total {f['total']:.4g}"
            + (f", {result.restarts} restarts after the loss blew up" if result.restarts else "")
        )
        return result.image.float().cpu()

    return Method(apply, cfg.style.name, False, False, f"optimization on {device}")


def _recolor(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    return preserve_color(content, stylized)


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
    method = _one_pass(cfg, device) if cfg.ckpt else _optimization(cfg, device)
    size = cfg.size
    if cfg.size is None and cfg.scale is None and not cfg.ckpt:
        size = OPTIMIZATION_SIZE
    if single_video:
        pairs = [(files[0], plan_video_output(files[0], cfg.output, method.label))]
    else:
        pairs = plan_outputs(files, root, cfg.output, method.label)
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
            tally.skip(f"skip: {dst} exists (overwrite=true replaces it)")
        else:
            (videos if is_video(src) else images).append((src, dst))
    if images:
        batch_size = cfg.batch_size if method.batch else 1
        recolor = _recolor if method.recolor else None
        _run_images(images, method.apply, size, cfg.scale, batch_size, recolor, tally)
    for pair in videos:
        _run_video(pair, method, cfg, size, tally)


def _real_path(path: Path) -> str:
    """The path with symlinks resolved as far as they go (a symlink loop does not raise)."""
    return os.path.realpath(path)


def plan_video_output(src: Path, output: str | None, label: str) -> Path:
    """A video's output: output= (a video file, or a folder to put it in), default
    <stem>_<label><suffix> beside it."""
    name = f"{src.stem}_{label}{src.suffix.lower()}"
    if output is None:
        return src.with_name(name)
    out = Path(output).expanduser()
    if out.is_dir() or output.endswith(("/", "\\")):
        return out / name
    if out.suffix.lower() not in VIDEO_EXTENSIONS:
        known = ", ".join(sorted(VIDEO_EXTENSIONS))
        raise ConfigError(
            f"output={output}: a video's output is a video file ({known}) or a folder"
        )
    return out


@dataclass
class Tally:
    """Counts, and one line per input: results on stdout, errors on stderr (above any bar).
    Lines go through display_path: a non-UTF-8 file name must not crash a strict stdout."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    bar: tqdm | None = field(default=None, repr=False)

    def ok(self, line: str) -> None:
        self.done += 1
        tqdm.write(display_path(line), file=sys.stdout)
        self._advance()

    def skip(self, line: str) -> None:
        self.skipped += 1
        tqdm.write(display_path(line), file=sys.stdout)

    def fail(self, line: str) -> None:
        self.failed += 1
        tqdm.write(display_path(line), file=sys.stderr)
        self._advance()

    def _advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _reason(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


def _run_video(pair: tuple[Path, Path], method: Method, cfg, size, tally: Tally) -> None:
    src, dst = pair
    with tqdm(desc=src.name, unit="frame", disable=None, file=sys.stderr, leave=False) as bar:
        try:
            result = stylize_video(
                src,
                dst,
                method.apply,
                size=size,
                scale=cfg.scale,
                batch_size=cfg.batch_size,
                transform=_recolor if method.recolor else None,
                progress=bar.update,
            )
        except VideoError as err:
            tally.fail(f"error: {err}")
            return
        except RuntimeError as err:  # out of memory
            tally.fail(f"error: {src}: could not stylize: {_reason(err)} (try a smaller size=)")
            return
    audio = ", audio dropped" if result.had_audio else ""
    tally.ok(
        f"{src} -> {dst} ({result.width}x{result.height}, {result.frames} frames at "
        f"{float(result.rate):.3g} fps{audio}, {result.seconds:.2f} s)"
    )


def _run_images(
    todo: list[tuple[Path, Path]],
    apply: Callable[[torch.Tensor], torch.Tensor],
    size: int | None,
    scale: float | None,
    batch_size: int,
    recolor: Callable | None,
    tally: Tally,
) -> None:
    """Decode ahead (2 threads), stylize in batches of equal-size images, encode behind
    (1 thread); one line per input, in input order."""
    with (
        ThreadPoolExecutor(2, thread_name_prefix="decode") as readers,
        ThreadPoolExecutor(1, thread_name_prefix="encode") as writers,
        tqdm(total=len(todo), unit="img", disable=None, file=sys.stderr, leave=False) as bar,
    ):
        tally.bar = bar
        # Decoded 8-bit pictures in flight: at most batch_size (a 4K photo is 25 MB so).
        loads = _prefetch(readers, todo, size, scale, ahead=batch_size)
        lines: deque = deque()  # (future of the write or None, line if it succeeds or fails)
        for batch in _batches(loads, batch_size):
            if isinstance(batch, str):  # a file that could not be read
                lines.append((None, batch))
                continue
            contents = batch[0][2] if len(batch) == 1 else torch.cat([c for _, _, c in batch])
            start = time.perf_counter()
            try:
                stylized = apply(contents)
                if recolor is not None:
                    stylized = recolor(contents, stylized)
            except (RuntimeError, FloatingPointError) as err:  # out of memory, diverged
                for src, _, _ in batch:
                    reason = f"could not stylize: {_reason(err)} (try a smaller size=)"
                    lines.append((None, f"error: {src}: {reason}"))
                continue
            seconds = (time.perf_counter() - start) / len(batch)
            sources = [(src, dst) for src, dst, _ in batch]
            del contents, batch  # a 4K photo is 100 MB as floats: keep only what is needed
            for (src, dst), image in zip(sources, stylized, strict=True):
                try:
                    picture = tensor_to_pil(image)  # encoded from 8 bits: 1/4 of the memory
                except ValueError as err:  # NaN from a diverged network
                    lines.append((None, f"error: {dst}: nothing written: {err}"))
                    continue
                w, h = picture.size
                line = f"{src} -> {dst} ({w}x{h}, {seconds:.2f} s)"
                lines.append((writers.submit(save_image, picture, dst), line))
            del stylized
            while lines and (lines[0][0] is None or lines[0][0].done() or len(lines) > 8):
                _report(*lines.popleft(), tally)
        while lines:
            _report(*lines.popleft(), tally)
        tally.bar = None


def _read(src: Path, size: int | None, scale: float | None):
    return resize_pil(read_rgb(src), size, scale)


def _prefetch(pool, todo, size, scale, ahead: int) -> Iterator[tuple[Path, Path, Future]]:
    """(src, dst, future of the decoded 8-bit picture), keeping `ahead` decodes in flight."""
    pending: deque = deque()
    for src, dst in todo:
        pending.append((src, dst, pool.submit(_read, src, size, scale)))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def _batches(loads, batch_size: int) -> Iterator[list | str]:
    """Consecutive decoded images of equal size, at most batch_size and AUTO_TILE_PIXELS in
    all (a large photo runs alone), as [(src, dst, content)]; an unreadable file as its line."""
    batch: list = []
    for src, dst, future in loads:
        try:
            content = pil_to_tensor(future.result())
        except (ImageError, MemoryError) as err:
            if batch:  # the photos before it first: lines stay in input order
                yield batch
                batch = []
            if isinstance(err, MemoryError):
                yield f"error: {src}: not enough memory to decode this image"
            else:
                yield f"error: {err}"
            continue
        pixels = content.shape[-2] * content.shape[-1]
        if batch and (
            content.shape != batch[0][2].shape
            or len(batch) >= batch_size
            or pixels * (len(batch) + 1) > AUTO_TILE_PIXELS
        ):
            yield batch
            batch = []
        batch.append((src, dst, content))
    if batch:
        yield batch


def _report(saved: Future | None, line: str, tally: Tally) -> None:
    """One input's line, once its write (if any) is done."""
    if saved is None:
        tally.fail(line)
        return
    try:
        saved.result()
    except ImageError as err:
        tally.fail(f"error: {err}")
        return
    tally.ok(line)
