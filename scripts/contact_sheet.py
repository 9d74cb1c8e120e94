"""python scripts/contact_sheet.py OUT.png [--height H] ROW [ROW ...]

Each ROW is a comma-separated list of image files, shown left to right at a common height
(default 256 px), e.g. `photo.jpg,photo_starry_night.png`. Writes one PNG contact sheet.
"""

from __future__ import annotations

import argparse
import sys

from gan_stylizer.errors import ImageError
from gan_stylizer.io.images import load_image, save_image
from gan_stylizer.io.sheets import make_grid


def main() -> int:
    parser = argparse.ArgumentParser(description="Assemble images into a contact sheet.")
    parser.add_argument("out")
    parser.add_argument("rows", nargs="+", help="comma-separated image files, one row each")
    parser.add_argument("--height", type=int, default=256)
    args = parser.parse_args()
    try:
        rows = [[load_image(p) for p in row.split(",") if p] for row in args.rows]
        save_image(make_grid(rows, height=args.height), args.out)
    except ImageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
