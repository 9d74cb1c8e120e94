"""images.py: every mode to 8-bit RGB, one-line errors with the path, atomic writes, colour."""

from __future__ import annotations

import io
import os
import pickle
import stat
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from gan_stylizer import color
from gan_stylizer.errors import ImageError
from gan_stylizer.io import images, sheets
from gan_stylizer.io.images import load_image, read_rgb, save_image


def rgb_at(path: Path, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    return read_rgb(path).getpixel(xy)


def one_line_error(path: Path, **kwargs) -> str:
    """read_rgb(path) must raise ImageError whose message is one line naming the path."""
    with pytest.raises(ImageError) as info:
        read_rgb(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert info.value.path == str(path) and info.value.problem in message
    return message


def png_with_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature and IHDR claiming width x height, with (almost) no pixel data."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


# --- reading: modes ---------------------------------------------------------------------------


def test_png_round_trip_within_one_level(tmp_path):
    t = torch.rand(1, 3, 17, 23)
    save_image(t, tmp_path / "x.png")
    back = load_image(tmp_path / "x.png")
    assert back.shape == (1, 3, 17, 23) and back.dtype == torch.float32
    assert (back - t).abs().max().item() <= 0.5 / 255 + 1e-6  # rounded, not truncated


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (1, 3, 40, 20)


def test_broken_exif_does_not_make_a_photo_unreadable(tmp_path):
    Image.new("RGB", (8, 4), (0, 0, 255)).save(tmp_path / "e.jpg", exif=b"Exif\x00\x00MM\x00*junk")
    assert load_image(tmp_path / "e.jpg").shape == (1, 3, 4, 8)


def test_grey_and_bilevel(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "g.png")
    assert rgb_at(tmp_path / "g.png") == (77, 77, 77)
    Image.new("1", (4, 4), 1).save(tmp_path / "b.bmp")
    assert rgb_at(tmp_path / "b.bmp") == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    p = Image.new("P", (4, 4), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.save(tmp_path / "p.png", transparency=0)  # index 0 (red) is transparent
    assert rgb_at(tmp_path / "p.png", (0, 0)) == (255, 255, 255)
    assert rgb_at(tmp_path / "p.png", (1, 1)) == (0, 0, 255)


def test_alpha_modes_are_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (255, 0, 0, 128)).save(tmp_path / "a.png")
    r, g, b = rgb_at(tmp_path / "a.png")
    assert r == 255 and abs(g - 128) <= 1 and abs(b - 128) <= 1

    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    assert rgb_at(tmp_path / "la.png") == (255, 255, 255)

    rgb = Image.new("RGB", (4, 4), (10, 20, 30))
    rgb.putpixel((1, 0), (40, 50, 60))
    rgb.save(tmp_path / "trns.png", transparency=(10, 20, 30))  # tRNS: one colour transparent
    assert rgb_at(tmp_path / "trns.png", (0, 0)) == (255, 255, 255)
    assert rgb_at(tmp_path / "trns.png", (1, 0)) == (40, 50, 60)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    r, g, b = rgb_at(tmp_path / "c.jpg", (4, 4))
    assert r > 230 and g < 30 and b < 30


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    levels = np.array([[65535, 32896, 0, 257, 1000]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as raw:
        assert raw.mode.startswith("I")  # the case under test: a wide mode, not "L"
    img = read_rgb(tmp_path / "d.png")
    assert img.mode == "RGB"
    assert [img.getpixel((x, 0)) for x in range(5)] == [
        (255,) * 3,
        (128,) * 3,
        (0,) * 3,
        (1,) * 3,
        (4,) * 3,  # 1000 / 257 = 3.9: scaled, where clipping would give 255
    ]


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_wide_grey_modes(tmp_path, mode):
    levels = np.array([[65535, 32896, 0]])
    if mode == "I":
        img = Image.fromarray(levels.astype(np.int32))
    else:
        img = Image.frombytes(mode, (3, 1), levels.astype(">u2").tobytes())
    img.save(tmp_path / "w.tif")
    with Image.open(tmp_path / "w.tif") as raw:
        assert raw.mode == mode
    assert [rgb_at(tmp_path / "w.tif", (x, 0))[0] for x in range(3)] == [255, 128, 0]


def test_float_images_are_taken_as_0_to_255_rounded_and_clipped(tmp_path):
    Image.fromarray(np.array([[0.0, 127.6, 300.0, -5.0]], np.float32)).save(tmp_path / "f.tif")
    assert [rgb_at(tmp_path / "f.tif", (x, 0))[0] for x in range(4)] == [0, 128, 255, 0]


def test_first_frame_of_animations_and_multipage_tiffs(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 255, 0)]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "m.tiff", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "a.gif") as gif, Image.open(tmp_path / "m.tiff") as tiff:
        assert gif.n_frames == 2 and tiff.n_frames == 2
    r, g, b = rgb_at(tmp_path / "a.gif")
    assert r > 200 and g < 50
    assert rgb_at(tmp_path / "m.tiff") == (255, 0, 0)


def test_read_rgb_returns_an_image_independent_of_the_file(tmp_path):
    Image.new("RGB", (5, 3), (1, 2, 3)).save(tmp_path / "x.png")
    img = read_rgb(tmp_path / "x.png")
    (tmp_path / "x.png").unlink()
    assert img.size == (5, 3) and img.getpixel((4, 2)) == (1, 2, 3)


# --- reading: errors --------------------------------------------------------------------------


def test_unreadable_files_get_one_line_errors(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "not an image" in one_line_error(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("hello,\nthis is not a photo\n")
    assert "not an image file (cannot identify image format)" in one_line_error(
        tmp_path / "text.jpg"
    )
    assert "no such file" in one_line_error(tmp_path / "missing.png")
    (tmp_path / "dir.png").mkdir()
    assert "folder" in one_line_error(tmp_path / "dir.png")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_permission_denied(tmp_path):
    path = tmp_path / "locked.png"
    Image.new("RGB", (2, 2)).save(path)
    path.chmod(0)
    try:
        assert "permission denied" in one_line_error(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused(tmp_path, fmt):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, fmt)
    path = tmp_path / f"t.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    assert "truncated" in one_line_error(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("L", (2000, 2000), 9).save(tmp_path / "bomb.png")  # 4 MP, a few kB on disk
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    message = one_line_error(tmp_path / "bomb.png", max_pixels=1_000_000)
    assert "decompression bomb" in message and "2000x2000 pixels exceeds the limit" in message
    assert not decoded


def test_bomb_check_uses_the_header_size(tmp_path):
    # The header claims 3000x3000 but holds no pixel data: decoding would report "truncated".
    path = png_with_header_only(tmp_path / "liar.png", 3000, 3000)
    assert "3000x3000" in one_line_error(path, max_pixels=1_000_000)
    assert "truncated" in one_line_error(path, max_pixels=10_000_000)
    # Beyond Pillow's own hard limit: refused by Pillow at open, reported the same way.
    huge = png_with_header_only(tmp_path / "huge.png", 40_000, 40_000)
    assert "decompression bomb" in one_line_error(huge)


def test_pillow_bomb_warning_is_replaced_by_our_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above, errors above 2x
    Image.new("RGB", (40, 40)).save(tmp_path / "ok.png")  # 1600 px: Pillow would warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_rgb(tmp_path / "ok.png").size == (40, 40)
    Image.new("RGB", (60, 60)).save(tmp_path / "big.png")  # 3600 px: Pillow's hard error
    assert "decompression bomb" in one_line_error(tmp_path / "big.png")


def test_image_error_pickles_with_path_and_problem():
    err = pickle.loads(pickle.dumps(ImageError("a/b.png", "corrupt\nimage")))
    assert (err.path, err.problem, str(err)) == (
        "a/b.png",
        "corrupt image",
        "a/b.png: corrupt image",
    )


# --- writing ----------------------------------------------------------------------------------


def test_failed_save_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    save_image(torch.zeros(1, 3, 4, 4), target)
    before = target.read_bytes()

    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(ImageError) as info:
        save_image(torch.ones(1, 3, 4, 4), target)
    assert str(info.value) == f"{target}: could not write: No space left on device"
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_interrupted_save_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.ones(1, 3, 4, 4), tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_unknown_output_extension_is_refused_before_writing(tmp_path):
    with pytest.raises(ImageError, match="unknown output format '.gifx'"):
        save_image(torch.zeros(1, 3, 2, 2), tmp_path / "sub" / "x.gifx")
    assert list(tmp_path.iterdir()) == []


def test_save_creates_folders_and_respects_the_umask(tmp_path):
    out = save_image(torch.zeros(3, 2, 2), tmp_path / "a" / "b" / "x.PNG")
    assert out == tmp_path / "a" / "b" / "x.PNG" and out.is_file()
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_saving_bad_tensors_is_refused_with_the_path(tmp_path):
    for bad in (torch.full((1, 3, 2, 2), float("nan")), torch.zeros(2, 3, 2, 2)):
        with pytest.raises(ImageError, match="nothing written"):
            save_image(bad, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="float"):
        images.tensor_to_pil(torch.zeros(3, 2, 2, dtype=torch.uint8))


def test_save_pil_images_in_any_mode(tmp_path):
    save_image(Image.new("RGBA", (3, 3), (0, 0, 0, 0)), tmp_path / "x.jpg")
    r, g, b = rgb_at(tmp_path / "x.jpg")
    assert min(r, g, b) > 245  # transparent -> white, even for JPEG which has no alpha


def test_tensor_to_pil_rounds():
    t = torch.tensor([0.0, 0.5 / 255 + 1e-4, 127.6 / 255, 1.2]).view(1, 1, 4).expand(3, 1, 4)
    img = images.tensor_to_pil(t)
    assert [img.getpixel((x, 0))[0] for x in range(4)] == [0, 1, 128, 255]


@pytest.mark.parametrize("ext", [".webp", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg"])
def test_every_supported_format_reads_and_writes(tmp_path, ext):
    t = torch.full((1, 3, 6, 5), 0.5)
    save_image(t, tmp_path / f"x{ext}")
    back = load_image(tmp_path / f"x{ext}")
    assert back.shape == (1, 3, 6, 5)
    assert (back - t).abs().max().item() < 0.05


# --- resizing, grids, colour ------------------------------------------------------------------


def test_resize_by_long_side(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "w.png")
    assert load_image(tmp_path / "w.png", size=150).shape == (1, 3, 100, 150)
    Image.new("RGB", (20, 50)).save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png", size=25).shape == (1, 3, 25, 10)
    assert images.resize_long_side(torch.rand(2, 3, 50, 20), 25).shape == (2, 3, 25, 10)
    assert images.resize_long_side(torch.rand(1, 3, 1, 300), 30).shape == (1, 3, 1, 30)
    assert images.resize_long_side(torch.rand(1, 3, 30, 40), 400).shape == (1, 3, 300, 400)
    out = images.resize_long_side(torch.randint(0, 2, (1, 3, 32, 32)).float(), 13)
    assert out.min() >= 0 and out.max() <= 1  # bicubic overshoot is clamped


def test_make_grid_shape_and_padding():
    a, b = torch.zeros(1, 3, 10, 20), torch.zeros(3, 20, 20)
    grid = sheets.make_grid([[a, b], [a]], pad=2)
    assert grid.shape == (1, 3, 22, 32)  # rows of height 10; b scaled to 10x10
    assert grid[0, :, :, 20:22].min().item() == 1.0  # white gap between cells
    assert grid[0, :, 10:12].min().item() == 1.0  # white gap between rows
    assert grid[0, :, 12:, 20:].min().item() == 1.0  # short row padded with white
    assert sheets.make_grid([[a, b]], pad=0, height=5).shape == (1, 3, 5, 15)


def test_make_grid_same_width_fits_rows_of_portraits_without_white_space():
    landscape, portrait = torch.zeros(1, 3, 10, 20), torch.zeros(1, 3, 20, 10)
    rows = [[landscape, landscape], [portrait, portrait]]
    assert sheets.make_grid(rows, pad=2).shape == (1, 3, 22, 42)  # row 2: 5+2+5 wide
    grid = sheets.make_grid(rows, pad=2, same_width=True)
    assert grid.shape == (1, 3, 10 + 2 + 40, 42)  # row 2 at height 40 spans the width
    assert grid[0, :, 12:, :20].max().item() == 0.0 and grid[0, :, 12:, 22:].max().item() == 0.0
    assert grid[0, :, 12:, 20:22].min().item() == 1.0  # the gap keeps its width
    # a row that rounding cannot fit exactly: its last cell takes the pixels left over
    odd = [[landscape, landscape], [torch.zeros(1, 3, 5, 8), torch.zeros(1, 3, 5, 8)]]
    grid = sheets.make_grid(odd, same_width=True)
    assert grid.shape == (1, 3, 10 + 4 + 12, 44)  # at height 12: 19 + 4 + 19, 2 px short
    assert grid[0, :, 14:, :19].max().item() == 0.0 and grid[0, :, 14:, 19:23].min() == 1.0
    assert grid[0, :, 14:, 23:].max().item() == 0.0  # 21 px wide, to the right edge


def test_preserve_color_keeps_luminance_of_stylized_and_chroma_of_content():
    torch.manual_seed(0)
    content = 0.3 + 0.4 * torch.rand(1, 3, 8, 8)
    stylized = 0.3 + 0.4 * torch.rand(1, 3, 8, 8)
    out = color.preserve_color(content, stylized)
    yiq_out, yiq_c, yiq_s = (color.rgb_to_yiq(t) for t in (out, content, stylized))
    assert torch.allclose(yiq_out[:, :1], yiq_s[:, :1], atol=1e-4)
    assert torch.allclose(yiq_out[:, 1:], yiq_c[:, 1:], atol=1e-4)
    assert torch.allclose(color.luminance(out), color.luminance(stylized), atol=1e-4)
    assert torch.allclose(color.yiq_to_rgb(yiq_c), content, atol=1e-5)


def test_preserve_color_resizes_content_and_clamps():
    content = torch.rand(1, 3, 16, 12)
    stylized = torch.rand(2, 3, 8, 6)
    out = color.preserve_color(content, stylized)
    assert out.shape == (2, 3, 8, 6) and out.min() >= 0 and out.max() <= 1


def test_caption_labels_the_top_left_corner_only():
    from gan_stylizer.io.sheets import caption

    image = torch.full((1, 3, 100, 150), 0.5)
    labelled = caption(image, "s=0.5")
    assert labelled.shape == image.shape
    changed = (labelled - image).abs().amax(dim=1)[0] > 0.01
    rows, cols = changed.nonzero(as_tuple=True)
    assert rows.min() == 0 and cols.min() == 0  # the white box starts at the corner
    assert rows.max() < 30 and cols.max() < 100  # ... and stays small: the picture shows
    assert (labelled[0, :, 2, 2] == 1).all() and labelled.min() < 0.4  # white box, dark text
    with pytest.raises(ValueError, match="some text"):
        caption(image, " ")
