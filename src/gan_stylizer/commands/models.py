"""The models command: list the zoo (`python scripts/models.py`, `gan-stylizer models`)."""

from __future__ import annotations

import sys

from gan_stylizer import zoo
from gan_stylizer.commands.cli import fail_cleanly


def run() -> int:
    """Print one line per zoo model: name, painting, steps, and how to use it."""
    names = zoo.names()
    if not names:
        print("the zoo is empty (no models installed with this copy of gan-stylizer)")
        return 0
    width = max(len(name) for name in names)
    for name in names:
        model = zoo.describe(name)
        strength = "strength dial" if model.manifest["generator"].get("conditioned") else "fixed"
        print(f"{name:<{width}}  {model.title} ({model.steps} steps, {strength})")
    print(f"use: python stylize.py ckpt={names[0]} input=photo.jpg [strength=0..1]")
    return 0


def main() -> None:
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print("usage: python scripts/models.py\n\nLists the pretrained stylizers of the zoo.")
        return
    with fail_cleanly():
        raise SystemExit(run())


if __name__ == "__main__":
    main()
