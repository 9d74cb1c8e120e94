"""python scripts/config_reference.py [OUT.md]: write docs/config.md, every key of every command
with its type, default and meaning, from the schema (gan_stylizer.config.reference)."""

import sys
from pathlib import Path

from gan_stylizer.config.reference import write

if __name__ == "__main__":
    out = (
        sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs/config.md"
    )
    print(f"wrote {write(out)}")
