"""images.py: every mode to 8-bit RGB, clear one-line errors, atomic writes."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gan_stylizer import images
from gan_stylizer.images import ImageError, load_image, read_rgb, save_image


def rgb_at(path, xy=(0, 0)):
    return read_rgb(path).getpixel(xy)


def test_png_round_trip_is_exact(tmp_path):
    t = torch.rand(1, 3, 17, 23)
    save_image(t, tmp_path / "x.png")
    back = load_image(tmp_path / "x.png")
    assert back.shape == (1, 3, 17, 23)
    assert (back - t).abs().max().item() <= 0.5 / 255 + 1e-6


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (1, 3, 40, 20)


def test_grayscale_palette_and_alpha_modes(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "g.png")
    assert rgb_at(tmp_path / "g.png") == (77, 77, 77)

    p = Image.new("P", (4, 4), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.save(tmp_path / "p.png", transparency=0)  # index 0 (red) is transparent -> white
    assert rgb_at(tmp_path / "p.png", (0, 0)) == (255, 255, 255)
    assert rgb_at(tmp_path / "p.png", (1, 1)) == (0, 0, 255)

    Image.new("RGBA", (4, 4), (255, 0, 0, 128)).save(tmp_path / "a.png")
    r, g, b = rgb_at(tmp_path / "a.png")
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1

    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    assert rgb_at(tmp_path / "la.png") == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    r, g, b = rgb_at(tmp_path / "c.jpg", (4, 4))
    assert r > 230 and g < 30 and b < 30


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    a = np.array([[65535, 32896, 0, 257]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "d.png")
    img = read_rgb(tmp_path / "d.png")
    assert [img.getpixel((x, 0))[0] for x in range(4)] == [255, 128, 0, 1]


def test_first_frame_of_animations_and_multipage_tiffs(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 255, 0)]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "m.tiff", save_all=True, append_images=frames[1:])
    assert rgb_at(tmp_path / "a.gif")[0] > 200
    assert rgb_at(tmp_path / "m.tiff") == (255, 0, 0)


def _one_line_error(path, **kwargs):
    with pytest.raises(ImageError) as info:
        read_rgb(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_unreadable_files_get_one_line_errors(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "not an image" in _one_line_error(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("hello")
    assert "not an image" in _one_line_error(tmp_path / "text.jpg")
    assert "no such file" in _one_line_error(tmp_path / "missing.png")
    (tmp_path / "dir.png").mkdir()
    assert "folder" in _one_line_error(tmp_path / "dir.png")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused(tmp_path, fmt):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buf, fmt)
    path = tmp_path / f"t.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert "truncated" in _one_line_error(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("L", (2000, 2000)).save(tmp_path / "bomb.png")
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    assert "decompression bomb" in _one_line_error(tmp_path / "bomb.png", max_pixels=1_000_000)
    assert not decoded


def test_failed_save_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    save_image(torch.zeros(1, 3, 4, 4), target)
    before = target.read_bytes()

    def disk_full(self, fp, *a, **k):
        fp.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(ImageError, match="No space left"):
        save_image(torch.ones(1, 3, 4, 4), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_unknown_output_extension_is_refused_before_writing(tmp_path):
    with pytest.raises(ImageError, match="unknown output format"):
        save_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.gifx")
    assert not list(tmp_path.iterdir())


def test_resize_by_long_side(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "w.png")
    assert load_image(tmp_path / "w.png", size=150).shape == (1, 3, 100, 150)
    assert images.resize_long_side(torch.rand(2, 3, 50, 20), 25).shape == (2, 3, 25, 10)
    assert images.resize_long_side(torch.rand(1, 3, 1, 300), 30).shape == (1, 3, 1, 30)


def test_make_grid_shape_and_padding():
    a, b = torch.zeros(1, 3, 10, 20), torch.zeros(3, 20, 20)
    grid = images.make_grid([[a, b], [a]], pad=2)
    assert grid.shape == (1, 3, 22, 32)  # rows of height 10; b scaled to 10x10
    assert grid[0, :, :, 20:22].min().item() == 1.0  # white gap between cells


def test_preserve_color_keeps_luminance_of_stylized_and_chroma_of_content():
    torch.manual_seed(0)
    content = 0.3 + 0.4 * torch.rand(1, 3, 8, 8)
    stylized = 0.3 + 0.4 * torch.rand(1, 3, 8, 8)
    out = images.preserve_color(content, stylized)
    yiq_out, yiq_c, yiq_s = (images.rgb_to_yiq(t) for t in (out, content, stylized))
    assert torch.allclose(yiq_out[:, :1], yiq_s[:, :1], atol=1e-4)
    assert torch.allclose(yiq_out[:, 1:], yiq_c[:, 1:], atol=1e-4)
    assert torch.allclose(images.yiq_to_rgb(yiq_c), content, atol=1e-5)


@pytest.mark.parametrize("ext", [".webp", ".bmp", ".tif", ".jpg"])
def test_every_supported_format_reads_and_writes(tmp_path, ext):
    t = torch.full((1, 3, 6, 5), 0.5)
    save_image(t, tmp_path / f"x{ext}")
    back = load_image(tmp_path / f"x{ext}")
    assert back.shape == (1, 3, 6, 5)
    assert (back - t).abs().max().item() < 0.05
