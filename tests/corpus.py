"""A corpus of awkward and broken input files, generated on the spot (nothing downloaded).

write_corpus(root) writes every case into one folder and returns them as Case records: the
file's path, the size a reader must produce (width, height) for files that are to be converted,
or the words of the one-line error for files that are to be refused. docs/reliability.md lists
the same cases with their behaviour.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str  # the case's id (also in docs/reliability.md)
    path: Path
    size: tuple[int, int] | None = None  # converted: (width, height) after EXIF rotation
    error: str | None = None  # refused: words of the one-line reason
    needs_non_root: bool = False  # only refused where permissions apply (not as root)

    @property
    def ok(self) -> bool:
        return self.error is None


def _noise(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid 1-bit PNG of width x height black pixels: a few tens of kB on disk that decode
    to width*height pixels (400 MP by default)."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path


def _exif_rotated_jpeg(path: Path) -> None:
    """Stored 40x24, EXIF orientation 6 (rotate 90° clockwise to display): shown 24x40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_noise(40, 24, 5)).save(path, "JPEG", exif=exif.tobytes())


def write_corpus(root: Path) -> list[Case]:
    """Every case below as a file (or folder, or link) directly in root."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def ok(name: str, filename: str | bytes, size: tuple[int, int]) -> Path:
        path = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(filename))))
        cases.append(Case(name, path, size=size))
        return path

    def bad(name: str, filename: str, error: str, **kw) -> Path:
        path = root / filename
        cases.append(Case(name, path, error=error, **kw))
        return path

    Image.fromarray(_noise(48, 32)).save(ok("ordinary photo", "photo.png", (48, 32)))
    bad("zero-byte file", "zero.jpg", "the file is empty").write_bytes(b"")
    bad("text file named .jpg", "text.jpg", "cannot identify image format").write_text(
        "hello, this is not a photo\n"
    )
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
        buf = io.BytesIO()
        Image.fromarray(_noise(64, 64, 1)).save(buf, fmt)
        data = buf.getvalue()
        bad(f"truncated {fmt}", f"truncated.{ext}", "truncated").write_bytes(data[: len(data) // 2])
    buf = io.BytesIO()
    Image.fromarray(_noise(16, 16, 2)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[29] ^= 0xFF  # the last byte of IHDR's CRC (8 signature + 8 length/type + 13 data)
    bad("PNG with a corrupt CRC", "bad_crc.png", "corrupt").write_bytes(bytes(data))
    bomb_png(bad("decompression bomb (400 MP in a small PNG)", "bomb.png", "decompression bomb"))
    Image.new("RGB", (1, 1), (200, 30, 30)).save(ok("1x1 image", "one_pixel.png", (1, 1)))
    Image.new("RGB", (3, 100_000), (30, 30, 200)).save(
        ok("3x100000 image", "sliver.png", (3, 100_000))
    )
    ramp = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 31).astype(np.uint16)
    Image.fromarray(ramp).save(ok("16-bit greyscale PNG", "sixteen_bit.png", (64, 32)))
    Image.fromarray(_noise(40, 30, 3)).convert("CMYK").save(
        ok("CMYK JPEG", "cmyk.jpg", (40, 30)), "JPEG"
    )
    palette = Image.new("P", (30, 20), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 1
    palette.save(ok("palette PNG with transparency", "palette.png", (30, 20)))
    Image.new("LA", (20, 10), (100, 128)).save(ok("LA (grey + alpha) PNG", "la.png", (20, 10)))
    Image.new("RGBA", (20, 10), (10, 200, 10, 60)).save(ok("RGBA PNG", "rgba.png", (20, 10)))
    _exif_rotated_jpeg(ok("EXIF-rotated JPEG", "rotated.jpg", (24, 40)))
    frames = [Image.new("RGB", (24, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(
        ok("animated GIF (first frame)", "animated.gif", (24, 16)),
        save_all=True,
        append_images=frames[1:],
    )
    frames[0].save(
        ok("multi-page TIFF (first page)", "pages.tiff", (24, 16)),
        save_all=True,
        append_images=frames[1:],
    )
    Image.fromarray(_noise(20, 12, 4)).save(ok("PNG named .jpg", "really_png.jpg", (20, 12)), "PNG")
    bad("folder named like an image", "folder.jpg", "folder").mkdir()
    locked = bad("unreadable file (no permissions)", "locked.png", "permission denied")
    Image.new("RGB", (8, 8)).save(locked)
    locked.chmod(0)
    os.symlink("loop.png", bad("symbolic link loop", "loop.png", "loops"))
    Image.fromarray(_noise(16, 16, 6)).save(ok("non-UTF-8 file name", b"caf\xe9.png", (16, 16)))
    Image.fromarray(_noise(16, 16, 7)).save(ok("250-byte file name", "n" * 246 + ".png", (16, 16)))
    # The permission case is refused only where permissions apply.
    if os.name != "posix" or os.geteuid() == 0:
        cases = [
            Case(c.name, c.path, size=(8, 8), needs_non_root=True) if c.path == locked else c
            for c in cases
        ]
    return cases
