"""Input collection: the image (and video) files that a file, a folder (recursive) or a glob
names, sorted, hidden files and symlink loops skipped.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Collection
from pathlib import Path

from gan_stylizer.errors import ConfigError
from gan_stylizer.io.images import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm"})  # read and written (PyAV)


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every image file below root (recursive, sorted, hidden files and symlink loops skipped)."""
    return list_files(root, IMAGE_EXTENSIONS)


def list_files(root: str | os.PathLike[str], extensions: Collection[str]) -> list[Path]:
    """Every file below root whose lower-case suffix is in `extensions` (recursive, sorted;
    hidden files and folders skipped; symlinked folders not followed, so no loops)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in extensions:
                found.append(Path(dirpath) / name)
    return sorted(found)


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


# The colour photos that scikit-image ships inside its wheel: an offline default for demos.
SAMPLE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


def sample_photos() -> list[Path]:
    """The sample photos' paths inside the installed scikit-image (no import of skimage.data)."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("data=samples needs scikit-image: pip install scikit-image")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    paths = [folder / name for name in SAMPLE_PHOTOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"data=samples: scikit-image lacks {', '.join(missing)}")
    return paths
