"""python research/tile_sheet.py ckpt=CKPT photo=PHOTO out=OUT.png [tile=512] [crop=400]
    [precision=auto]

Shows that tiled inference leaves no seam: stylizes PHOTO at full resolution tiled (as
stylize.py does above 2 MP) and untiled, and writes a contact sheet:
  row 1: the photo | the tiled output (both scaled down to the crop's height), the tile grid
         in thin white lines and the crop's box in red;
  row 2: a 100% crop of the tiled output where four tiles meet | the same crop untiled |
         their absolute difference ×10.
Prints the mean absolute difference between the two outputs (in 1/255), overall and in the crop.
"""

from __future__ import annotations

import sys

import torch
from PIL import ImageDraw
from trainings import UsageError, parse_key_values

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.config.validate import parse_tile
from gan_stylizer.devices import resolve_dtype
from gan_stylizer.errors import CheckpointError, ImageError
from gan_stylizer.inference.layers import spans
from gan_stylizer.inference.onepass import OnePass
from gan_stylizer.io.images import load_image, pil_to_tensor, save_image, tensor_to_pil
from gan_stylizer.io.sheets import make_grid
from gan_stylizer.models.generator import Generator


def boundaries(size: int, tile: int) -> list[int]:
    """Output pixels where tiles meet along one axis (the blend is centred there)."""
    padded = size + max(-size % Generator.MULTIPLE, Generator.MIN_SIZE - size)
    return [4 * start for start, _ in spans(padded // 4, tile // 4)[1:]]


DEFAULTS = {
    "ckpt": None,
    "photo": None,
    "out": None,
    "tile": "512",
    "crop": 400,
    "precision": "auto",
}


def main(argv: list[str]) -> int:
    try:
        args = parse_key_values(argv, DEFAULTS, ints=("crop",), folders=())
        missing = [key for key in ("ckpt", "photo", "out") if args[key] is None]
        if missing:
            raise UsageError(f"{', '.join(f'{k}=' for k in missing)} required; see the docstring")
        generator, _ = load_generator(args["ckpt"])
        content = load_image(args["photo"])
        tile = parse_tile(args["tile"])
    except (UsageError, CheckpointError, ImageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not isinstance(tile, int):
        print("error: tile= must be a size in pixels", file=sys.stderr)
        return 2
    device = torch.device("cpu")
    dtype = resolve_dtype(args["precision"], device)
    h, w = content.shape[-2:]
    rows, cols = boundaries(h, tile), boundaries(w, tile)
    if not rows and not cols:
        print(f"error: {args['photo']}: {w}x{h} fits in one {tile}-px tile", file=sys.stderr)
        return 2
    crop = min(args["crop"], h, w)
    tiled = OnePass(generator, device, dtype, tile)(content)
    whole = OnePass(generator, device, dtype, "off")(content)
    diff = (tiled - whole).abs()

    # Centred where the first row and column of tiles meet (or on the one seam there is).
    top = min(max((rows[0] if rows else h // 2) - crop // 2, 0), h - crop)
    left = min(max((cols[0] if cols else w // 2) - crop // 2, 0), w - crop)
    box = (..., slice(top, top + crop), slice(left, left + crop))
    crops = [tiled[box], whole[box], (diff[box] * 10).clamp(0, 1)]

    overview = tensor_to_pil(tiled[0])
    draw = ImageDraw.Draw(overview)
    line = max(1, w // 800)
    for r in rows:
        draw.line([(0, r), (w, r)], fill=(255, 255, 255), width=line)
    for c in cols:
        draw.line([(c, 0), (c, h)], fill=(255, 255, 255), width=line)
    draw.rectangle([left, top, left + crop, top + crop], outline=(255, 0, 0), width=3 * line)
    # One height for both rows: the crops' own size, so that they show at 100%.
    sheet = make_grid([[content, pil_to_tensor(overview)], crops], height=crop)
    save_image(sheet, args["out"])
    print(
        f"{args['photo']}: {w}x{h}, tile {tile} ({len(rows) + 1}x{len(cols) + 1} tiles), "
        f"{str(dtype).removeprefix('torch.')}; tiled vs untiled: mean |diff| "
        f"{diff.mean().item() * 255:.3f}/255, in the crop {diff[box].mean().item() * 255:.3f}/255, "
        f"max {diff.max().item() * 255:.1f}/255; crop at ({left}, {top}), {crop} px; "
        f"wrote {args['out']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
