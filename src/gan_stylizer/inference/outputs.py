"""Where each output goes: beside the input as <stem>_<label>.png, into output= (a file or a
folder mirroring the inputs' tree), a video as a video; an input is never an output.
"""

from __future__ import annotations

import os
from pathlib import Path

from gan_stylizer.errors import ConfigError
from gan_stylizer.io.inputs import VIDEO_EXTENSIONS, is_video


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
