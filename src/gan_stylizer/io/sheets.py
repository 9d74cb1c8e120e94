"""Contact sheets: rows of images scaled to one height (or one width) with white gaps, and
captions drawn onto a cell; RGB [1, 3, H, W] in [0, 1] in and out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_stylizer.color import _check_rgb
from gan_stylizer.io.images import pil_to_tensor, tensor_to_pil


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    return image.unsqueeze(0) if image.dim() == 3 else image


def make_grid(
    rows: list[list[torch.Tensor]],
    pad: int = 4,
    height: int | None = None,
    same_width: bool = False,
) -> torch.Tensor:
    """Contact sheet: rows of [1, 3, h, w] / [3, h, w] cells in [0, 1] -> [1, 3, H, W] on CPU.

    Every cell is scaled to a common height (default: the first cell's), keeping its aspect;
    cells in a row and the rows themselves are separated by `pad` white pixels, and shorter rows
    are padded on the right with white to the widest one. same_width: each row instead gets the
    height at which it spans the widest row (rows of portrait photos come out taller; the last
    cell of a row stretched by the pixel or two that rounding leaves), so photos of mixed
    orientations leave no white space.
    """
    if not rows or not all(rows):
        raise ValueError("make_grid needs at least one row, and at least one cell in every row")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    height = _as_batch(rows[0][0]).shape[-2] if height is None else height
    if height < 1:
        raise ValueError(f"height must be positive, got {height}")

    cells = []
    for row in rows:
        row_cells = []
        for cell in row:
            cell = _as_batch(cell).detach().to("cpu", torch.float32)
            _check_rgb(cell, "grid cell")
            if cell.shape[0] != 1:
                raise ValueError(f"grid cells are single images, got a batch of {cell.shape[0]}")
            row_cells.append(cell)
        cells.append(row_cells)

    def width_at(row: list[torch.Tensor], h: int) -> int:
        return sum(_width_at(cell, h) for cell in row) + pad * (len(row) - 1)

    width = max(width_at(row, height) for row in cells)
    strips = []
    for row in cells:
        h = height
        if same_width and width_at(row, height) < width:  # the tallest height that fits
            aspects = sum(cell.shape[-1] / cell.shape[-2] for cell in row)
            h = max(1, int((width - pad * (len(row) - 1)) / aspects) + 1)
            while h > 1 and width_at(row, h) > width:
                h -= 1
        widths = [_width_at(cell, h) for cell in row]
        if same_width:  # the last cell takes the pixel or two that rounding leaves
            widths[-1] += width - width_at(row, h)
        pieces = []
        for cell, cell_width in zip(row, widths, strict=True):
            size = (h, cell_width)
            if size != tuple(cell.shape[-2:]):
                cell = F.interpolate(
                    cell, size=size, mode="bilinear", antialias=True, align_corners=False
                )
            pieces += [cell.clamp(0, 1), torch.ones(1, 3, h, pad)]
        strips.append(torch.cat(pieces[:-1], dim=-1))

    pieces = []
    for strip in strips:
        pieces += [
            F.pad(strip, (0, width - strip.shape[-1]), value=1.0),
            torch.ones(1, 3, pad, width),
        ]
    return torch.cat(pieces[:-1], dim=-2)


def _width_at(cell: torch.Tensor, height: int) -> int:
    """A [1, 3, h, w] cell's width when scaled to `height`, keeping its aspect."""
    h, w = cell.shape[-2:]
    return max(1, (w * height + h // 2) // h)


def caption(image: torch.Tensor, text: str, scale: float = 0.07) -> torch.Tensor:
    """A copy of an image ([1, 3, H, W] / [3, H, W] in [0, 1]) with `text` in black on a white
    box at its top-left corner, the letters about scale·H tall, so that a label stays legible
    when make_grid rescales the cell. Returns [1, 3, H, W], 8-bit quantized."""
    from PIL import ImageDraw, ImageFont

    if not text.strip():
        raise ValueError("caption needs some text")
    picture = tensor_to_pil(image)
    size = max(8, round(scale * picture.height))
    try:
        font = ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow without FreeType: the small bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(picture)
    pad = max(1, size // 4)
    _, _, right, bottom = draw.textbbox((pad, pad), text, font=font)
    draw.rectangle((0, 0, right + pad, bottom + pad), fill="white")
    draw.text((pad, pad), text, fill="black", font=font)
    return pil_to_tensor(picture)
