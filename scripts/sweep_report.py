"""python scripts/sweep_report.py multirun/<name>/<time> [--by total] [--photo P] [--size N]

The report of a sweep (`python train.py -m ...`): every run ranked by the evaluation's fixed
ruler, as report.md and report.csv, and contact_sheet.png with one photo stylized by every run,
alpha across and beta down. Written into the sweep folder (or --out). See README "Sweeping α/β".
"""

from __future__ import annotations

import argparse
import sys

from gan_stylizer.errors import CheckpointError, ConfigError, ImageError
from gan_stylizer.io.images import load_image
from gan_stylizer.training.sweep import RANKINGS, write_report


def main() -> int:
    parser = argparse.ArgumentParser(description="Rank the runs of a sweep; an alpha x beta sheet.")
    parser.add_argument("sweep_dir", help="the multirun folder, e.g. multirun/<name>/<time>")
    parser.add_argument(
        "--by", default="total", choices=sorted(RANKINGS), help="ranking metric (default total)"
    )
    parser.add_argument("--photo", help="photo for the contact sheet (default: first val photo)")
    parser.add_argument(
        "--size", type=int, help="long side of the sheet's cells (default val_size)"
    )
    parser.add_argument("--out", help="folder for the report (default: the sweep folder)")
    args = parser.parse_args()
    try:
        photo = load_image(args.photo) if args.photo else None
        report = write_report(args.sweep_dir, args.out, by=args.by, photo=photo, size=args.size)
    except (ConfigError, ImageError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
