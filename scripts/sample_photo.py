"""python scripts/sample_photo.py OUT.png [name]: copy one of the photos that scikit-image ships
(default chelsea.png) to OUT.png, so the demo stylizes a photo outside site-packages."""

import sys
from pathlib import Path

from gan_stylizer.io.images import load_image, save_image
from gan_stylizer.io.inputs import SAMPLE_PHOTOS, sample_photos


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name = sys.argv[2] if len(sys.argv) == 3 else "chelsea.png"
    if name not in SAMPLE_PHOTOS:
        print(f"error: {name} is not one of {', '.join(SAMPLE_PHOTOS)}", file=sys.stderr)
        return 2
    source = next(p for p in sample_photos() if p.name == name)
    out = save_image(load_image(source), Path(sys.argv[1]))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
