"""`gan-stylizer COMMAND [key=value ...]`: the installed commands, with the same keys and Hydra
overrides as the root scripts (train.py, stylize.py, scripts/*.py), which keep working."""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "train": "train a stylizer (python train.py)",
    "stylize": "stylize photos, folders or videos (python stylize.py)",
    "export": "export a generator as ONNX or torch.export (python scripts/export.py)",
    "evaluate": "score a stylizer under the fixed ruler (python scripts/evaluate.py)",
    "models": "list the pretrained models of the zoo (python scripts/models.py)",
    "serve": "the local web page: upload, pick a painting, stylize (python app.py)",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: gan-stylizer COMMAND [key=value ...]   (COMMAND --help: its keys)", ""]
    lines += [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    # Run as `python -m gan_stylizer.commands.<name>`: Lightning starts the other DDP ranks by
    # running the same module again with the same overrides, which a console script cannot be.
    module = f"gan_stylizer.commands.{name}"
    os.execv(sys.executable, [sys.executable, "-m", module, *rest])


if __name__ == "__main__":
    main()
