"""Images in and out: every file becomes a float32 RGB tensor [B, 3, H, W] in [0, 1].

This is the one module that touches Pillow and knows pixel conventions. Reading decodes the
whole file up front (a truncated photo fails here, with its path, not mid-training), applies the
EXIF orientation, takes the first frame and converts every Pillow mode to 8-bit RGB, compositing
transparency on white. Writing is atomic: a temporary file in the target folder, fsync, rename.
Every failure is an `ImageError` whose message is one line, "<path>: <problem>".

Embedded ICC colour profiles are not applied: pixel values are taken to be sRGB.
"""

from __future__ import annotations

import errno
import math
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_stylizer.color import _check_rgb
from gan_stylizer.errors import ImageError, reason
from gan_stylizer.io import atomic

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageError",
    "load_image",
    "long_side_size",
    "pil_to_tensor",
    "read_rgb",
    "resize_long_side",
    "resize_pil",
    "save_image",
    "tensor_to_pil",
]

# Pillow's formats that decode here without an outside program or handler. EPS runs
# Ghostscript (a hostile file would reach it); WMF, BUFR, GRIB and HDF5 are stubs that need a
# handler; MPEG is only identified, not decoded.
_NOT_READ = frozenset({"EPS", "WMF", "BUFR", "GRIB", "HDF5", "MPEG"})


def _read_formats() -> tuple[list[str], frozenset[str]]:
    Image.init()
    formats = sorted(f for f in Image.OPEN if f not in _NOT_READ)
    suffixes = {e for e, f in Image.registered_extensions().items() if f in formats}
    return formats, frozenset(suffixes | {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif"})


# What read_rgb opens, and the suffixes a folder scan takes as images (.avif and .ico too).
READ_FORMATS, IMAGE_EXTENSIONS = _read_formats()

# Images with more pixels are refused before decoding (decompression bombs). This is Pillow's
# own hard limit, 2 x Image.MAX_IMAGE_PIXELS (~179 MP): above a 16K frame (16384 x 9216 =
# 151 MP), below what would exhaust memory once decoded (179 MP is 2.1 GB as a float tensor).
MAX_PIXELS: int = 178_956_970

_SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
SAVE_SUFFIXES = tuple(_SAVE_FORMATS)  # what an output's suffix may be
# Modes that Pillow decodes 16-bit greyscale into. "I" is 32-bit signed, but the files that
# produce it (16-bit PNG/PGM/TIFF in some Pillow versions) hold 0-65535.
_WIDE_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What a malformed file can make Pillow's decoders raise (UnidentifiedImageError is an OSError).
# Errors of the file system, not of the image, that stat/open can raise.
_FILE_PROBLEMS = {
    errno.ELOOP: "a symbolic link that loops (points back to itself)",
    errno.ENAMETOOLONG: "file name too long for this file system",
    errno.EIO: "input/output error while reading (a failing disk or network share?)",
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


# ----------------------------------------------------------------------------------------------
# Reading


def read_rgb(path: str | os.PathLike[str], max_pixels: int | None = None) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image: first frame, EXIF-oriented, fully decoded.

    Transparency is composited on white; 16-bit greyscale is scaled (/257), not clipped. Images
    with more than `max_pixels` pixels (default `MAX_PIXELS`) are refused from the header size,
    before any decoding; Pillow's own hard limit (2 x `Image.MAX_IMAGE_PIXELS`) applies as well.
    Raises `ImageError` for every problem with the file.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if limit < 1:
        raise ValueError(f"max_pixels must be positive, got {limit}")
    file = Path(path)
    try:
        _check_is_file(file, path)
        with warnings.catch_warnings():
            # Our limit below replaces Pillow's warning; its hard error is still raised and mapped.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Broken EXIF is tolerated on purpose (see _exif_transpose): no warning per photo.
            warnings.filterwarnings("ignore", "Corrupt EXIF data", UserWarning)
            with Image.open(file, formats=READ_FORMATS) as img:
                _check_pixel_count(path, img.size, limit)
                img.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame
                img.load()  # decode everything now, so a truncated file fails here
                oriented = _exif_transpose(img)
                rgb = _convert(path, oriented)
                return rgb.copy() if rgb is img else rgb  # detach from the file being closed
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not an image file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except UnidentifiedImageError:
        kind = _sniff_format(file)
        if kind is not None:  # the signature of an image format, but Pillow cannot parse it
            raise ImageError(path, f"corrupt {kind} file (its header cannot be parsed)") from None
        raise ImageError(path, "not an image file (cannot identify image format)") from None
    except Image.DecompressionBombError as err:
        raise ImageError(path, f"refused as a possible decompression bomb: {err}") from None
    except MemoryError:
        raise ImageError(path, "not enough memory to decode this image") from None
    except _DECODE_ERRORS as err:
        if isinstance(err, OSError) and err.errno in _FILE_PROBLEMS:
            raise ImageError(path, _FILE_PROBLEMS[err.errno]) from None
        raise ImageError(path, f"corrupt or truncated image ({reason(err)})") from None


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _sniff_format(file: Path) -> str | None:
    """The image format whose signature the file starts with, if any."""
    try:
        with open(file, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), None)


def _check_is_file(file: Path, shown: str | os.PathLike[str]) -> None:
    """Refuse folders, devices/FIFOs (which would block) and empty files with their own words."""
    if file.is_dir():
        raise ImageError(shown, "is a folder, not an image file")
    if file.exists() and not file.is_file():
        raise ImageError(shown, "not a regular file")
    if file.stat().st_size == 0:  # FileNotFoundError here is mapped by the caller
        raise ImageError(shown, "not an image file (the file is empty)")


def _check_pixel_count(shown: str | os.PathLike[str], size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(shown, f"has no pixels ({width}x{height})")
    if width * height > limit:
        raise ImageError(
            shown,
            f"refused as a possible decompression bomb: {width}x{height} pixels exceeds the "
            f"limit of {limit:,} (pass a larger max_pixels if the image is genuine)",
        )


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the pixels as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except (*_DECODE_ERRORS, KeyError, TypeError):
        # Cameras and editors write malformed EXIF often; the pixel data is still fine, and
        # refusing the photo over its metadata would be worse than showing it unrotated.
        return img


def _convert(shown: str | os.PathLike[str], img: Image.Image) -> Image.Image:
    try:
        return _to_rgb(img)
    except ValueError as err:  # e.g. LAB: Pillow has no conversion to RGB
        raise ImageError(shown, f"unsupported colour mode {img.mode} ({reason(err)})") from None


def _has_alpha(img: Image.Image) -> bool:
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        return True
    # A palette may carry alpha itself (e.g. some WebP and PNG files), without info["transparency"].
    return img.mode == "P" and img.palette is not None and img.palette.mode == "RGBA"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency composited on white, 16-bit scaled by 1/257."""
    if img.mode in _WIDE_GREY_MODES:
        return _wide_grey_to_rgb(img)
    if img.mode == "F":
        # Float images are taken in Pillow's own convention (0-255, as convert("L") does), but
        # rounded rather than truncated; values outside are clipped, NaN becomes black.
        grey = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        return _grey_u8(grey)
    if _has_alpha(img):
        rgba = img.convert("RGBA")  # also resolves palettes, tRNS colours, premultiplied alpha
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV


def _wide_grey_to_rgb(img: Image.Image) -> Image.Image:
    values = np.asarray(img).astype(np.float64)
    grey = values / 257.0  # 65535 -> 255 exactly; clipping at 255 would turn most pixels white
    transparent = img.info.get("transparency")
    if isinstance(transparent, int):  # a 16-bit PNG's tRNS names one grey value
        grey[values == transparent] = 255.0
    return _grey_u8(grey)


def _grey_u8(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image (any mode) -> float32 [1, 3, H, W] in [0, 1]."""
    pixels = np.array(_to_rgb(img), dtype=np.uint8)  # a copy: torch must own writable memory
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()


def long_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) scaled so that the long side is `size`, rounded, each side at least 1."""
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    long = max(height, width)
    # Integer arithmetic: half-up rounding, and the long side is exactly `size`.
    return max(1, (height * size + long // 2) // long), max(1, (width * size + long // 2) // long)


def load_image(
    path: str | os.PathLike[str],
    size: int | None = None,
    max_pixels: int | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Read an image file as float32 RGB [1, 3, H, W] in [0, 1], long side `size` if given,
    or its own size times `scale`.

    Resizing uses Lanczos on the 8-bit image (aspect kept). Raises `ImageError`.
    """
    return pil_to_tensor(resize_pil(read_rgb(path, max_pixels=max_pixels), size, scale))


def resized_size(
    width: int, height: int, size: int | None = None, scale: float | None = None
) -> tuple[int, int]:
    """(width, height) after resize_pil(size=, scale=)."""
    if size is not None:
        new_height, new_width = long_side_size(height, width, size)
        return new_width, new_height
    if scale is not None:
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def check_output_size(
    shown: str | os.PathLike[str], width: int, height: int, size=None, scale=None
) -> None:
    """ImageError before anything is allocated when the output of an image of width x height,
    resized by size= or scale=, would hold more than MAX_PIXELS pixels (the decoded inputs'
    limit applies to what the program makes, too)."""
    new_width, new_height = resized_size(width, height, size, scale)
    if new_width * new_height > MAX_PIXELS:
        asked = f"size={size}" if size is not None else f"scale={scale}"
        raise ImageError(
            shown,
            f"{asked} would make {new_width}x{new_height} = {new_width * new_height:,} pixels, "
            f"more than the limit of {MAX_PIXELS:,}; choose a smaller {asked.split('=')[0]}=",
        )


def resize_pil(
    img: Image.Image, size: int | None = None, scale: float | None = None
) -> Image.Image:
    """Long side `size`, or each side times `scale` (rounded, at least 1 px); Lanczos on the
    8-bit image. Unchanged if neither is given or the size does not change."""
    if size is not None and scale is not None:
        raise ValueError("give size or scale, not both")
    width, height = img.size
    if scale is not None and not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive finite number, got {scale}")
    new_width, new_height = resized_size(width, height, size, scale)
    if (new_height, new_width) == (height, width):
        return img
    return img.resize((new_width, new_height), Image.Resampling.LANCZOS)


def resize_long_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> [B, 3, h, w] with long side `size`, aspect kept, in [0, 1].

    Antialiased bicubic; clamped because bicubic overshoots at edges. Returned unchanged if the
    long side already is `size`.
    """
    _check_rgb(image, "image")
    height, width = image.shape[-2:]
    new = long_side_size(height, width, size)
    if new == (height, width):
        return image
    out = F.interpolate(image, size=new, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# Writing


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Float [1, 3, H, W] or [3, H, W] in [0, 1] -> 8-bit RGB PIL image (clamped, rounded).

    Raises ValueError for a batch of several images, a wrong shape, an integer tensor (whose
    0-255 values would all clamp to white) or NaN/inf values (a diverged network).
    """
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor [3, H, W], got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"expected a float tensor in [0, 1], got dtype {image.dtype}")
    height, width = image.shape[-2:]
    pixels = np.empty((height, width, 3), np.uint8)
    # In bands of rows: a 4K image is 100 MB per float copy, a band a few MB.
    rows = max(1, 2**20 // max(width, 1))
    for r in range(0, height, rows):
        band = image[:, r : r + rows].detach().to("cpu", torch.float32)
        if not torch.isfinite(band).all():
            raise ValueError("the image holds NaN or infinite values")
        # round, not truncate: 0.999/255*255 -> 1
        band = band.clamp(0, 1).mul_(255).round_().to(torch.uint8)
        pixels[r : r + rows] = band.permute(1, 2, 0).numpy()
    return Image.fromarray(pixels, "RGB")


def save_image(
    image: torch.Tensor | Image.Image, path: str | os.PathLike[str], quality: int = 95
) -> Path:
    """Write an RGB image ([1, 3, H, W] / [3, H, W] float in [0, 1], or PIL) atomically.

    The format comes from the extension (png, jpg/jpeg, webp, bmp, tif/tiff); `quality` (1-100)
    applies to JPEG and WebP. The bytes go to a temporary file beside `path`, are fsynced, and
    only then renamed over it: a crash or a full disk never leaves a half-written image, and an
    existing file at `path` stays intact. Parent folders are created. Returns `path`.
    """
    target = Path(path)
    fmt = _SAVE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        known = ", ".join(_SAVE_FORMATS)
        raise ImageError(path, f"unknown output format {target.suffix!r}; use one of {known}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    try:
        img = _to_rgb(image) if isinstance(image, Image.Image) else tensor_to_pil(image)
    except ValueError as err:
        raise ImageError(path, f"nothing written: {err}") from None
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageError(path, f"could not create the folder: {reason(err)}") from None
    try:
        atomic.write_with(target, lambda out: img.save(out, format=fmt, **options))
    except (OSError, ValueError) as err:
        raise ImageError(path, f"could not write: {reason(err)}") from None
    return target


# ----------------------------------------------------------------------------------------------
# Contact sheets


# ----------------------------------------------------------------------------------------------
# Colour: luminance-only transfer (Gatys et al. 2017, "Controlling perceptual factors")
