"""The one place that reads and writes images and knows pixel conventions.

Everywhere else an image is a float32 RGB tensor in [0, 1] of shape [B, 3, H, W]. Reading
decodes fully (a truncated file fails here, not mid-training), applies EXIF orientation, and
converts every mode to 8-bit RGB; writing is atomic (temporary file, then rename).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
# Refuse images above this many pixels before decoding them (decompression bombs). 180 MP is
# well above a 16K photo (16384 x 9216 = 151 MP) and far below what would exhaust memory.
MAX_PIXELS = 180_000_000

_SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


class ImageError(Exception):
    """An image cannot be read or written. str() is one line: '<path>: <problem>'."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grey: scale 0-65535 to 0-255 instead of clipping at 255.
        a = np.asarray(img, dtype=np.float64)
        a = a / 257.0 if a.max(initial=0) > 255 or mode.startswith("I;16") else a
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        a = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info or mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def read_rgb(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Read an image file as 8-bit RGB (first frame, EXIF-oriented); ImageError on any fault."""
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > limit:
                    raise ImageError(
                        path,
                        f"refused as a possible decompression bomb: {w}x{h} pixels "
                        f"exceeds the limit of {limit:,}",
                    )
                if w < 1 or h < 1:
                    raise ImageError(path, f"has no pixels ({w}x{h})")
                img.seek(0)  # animated GIF / multi-page TIFF: the first frame
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img).copy()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image file (cannot identify image format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(path, f"refused as a possible decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(path, f"corrupt or truncated image: {err}") from None


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float32 [1,3,H,W] in [0,1]."""
    a = np.array(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """[1,3,H,W] or [3,H,W] in [0,1] -> 8-bit RGB PIL image (clamped, rounded)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"tensor_to_pil takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"tensor_to_pil expects [3, H, W], got {tuple(image.shape)}")
    a = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu()
    return Image.fromarray(a.numpy(), "RGB")


def long_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """(h, w) scaled so that the long side is `size`; each side at least 1."""
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_long_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """[B,3,H,W] in [0,1] -> long side `size` (antialiased bicubic, clamped to [0,1])."""
    h, w = image.shape[-2:]
    new = long_side_size(h, w, size)
    if new == (h, w):
        return image
    out = F.interpolate(image, size=new, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(0, 1)


def load_image(
    path: str | os.PathLike, size: int | None = None, max_pixels: int | None = None
) -> torch.Tensor:
    """Read an image file as float32 RGB [1,3,H,W] in [0,1], long side `size` if given."""
    img = read_rgb(path, max_pixels=max_pixels)
    if size is not None:
        w, h = img.size
        new_h, new_w = long_side_size(h, w, size)
        if (new_h, new_w) != (h, w):
            img = img.resize((new_w, new_h), Image.LANCZOS)
    return pil_to_tensor(img)


def save_image(
    image: torch.Tensor | Image.Image, path: str | os.PathLike, quality: int = 95
) -> Path:
    """Write an RGB [1,3,H,W]/[3,H,W] tensor in [0,1] (or a PIL image) atomically.

    The bytes go to a temporary file in the target folder, are flushed to disk, and only then
    renamed over `path`: a crash or a full disk never leaves a half-written file, and an
    existing file at `path` stays intact on failure.
    """
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            path, f"unknown output format {path.suffix!r}; use one of {', '.join(_SAVE_FORMATS)}"
        )
    img = image if isinstance(image, Image.Image) else tensor_to_pil(image)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            img.save(tmp, format=fmt, **options)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as err:
        raise ImageError(path, f"could not write: {err.strerror or err}") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return path


def _as_batch(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(0) if t.dim() == 3 else t


def make_grid(
    rows: list[list[torch.Tensor]], pad: int = 4, height: int | None = None
) -> torch.Tensor:
    """Contact sheet [1,3,H,W] in [0,1] from rows of [1,3,h,w] / [3,h,w] cells: every cell
    scaled to a common height (default: the first cell's), white `pad` px between cells and
    rows, rows padded on the right to the widest one."""
    if not rows or not rows[0]:
        raise ValueError("make_grid needs at least one cell")
    height = height or _as_batch(rows[0][0]).shape[-2]
    strips = []
    for row in rows:
        cells = []
        for cell in row:
            cell = _as_batch(cell).float().cpu()
            h, w = cell.shape[-2:]
            new_w = max(1, round(w * height / h))
            if (h, w) != (height, new_w):
                cell = F.interpolate(
                    cell, size=(height, new_w), mode="bilinear", antialias=True, align_corners=False
                )
            cells.append(cell.clamp(0, 1))
            cells.append(torch.ones(1, 3, height, pad))
        strips.append(torch.cat(cells[:-1], dim=-1))
    width = max(s.shape[-1] for s in strips)
    out = []
    for strip in strips:
        out.append(F.pad(strip, (0, width - strip.shape[-1]), value=1.0))
        out.append(torch.ones(1, 3, pad, width))
    return torch.cat(out[:-1], dim=-2)


# YIQ (NTSC): Y is luminance; I and Q carry the colour.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(image.device, image.dtype), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] RGB -> YIQ (Y in [0,1], I and Q signed)."""
    return _mix(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] YIQ -> RGB (not clamped)."""
    return _mix(_YIQ_TO_RGB, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] RGB in [0,1] -> luminance Y [B,1,H,W] in [0,1]."""
    return rgb_to_yiq(image)[:, :1]


def preserve_color(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """The stylized image's luminance with the content's colour (I, Q): RGB [B,3,H,W] in [0,1].

    Luminance-only transfer, as Gatys et al. (2017) describe; the content is resized to the
    stylized image's size if they differ.
    """
    if content.shape[-2:] != stylized.shape[-2:]:
        content = F.interpolate(
            content, size=stylized.shape[-2:], mode="bicubic", antialias=True, align_corners=False
        )
    yiq = torch.cat([rgb_to_yiq(stylized)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)
