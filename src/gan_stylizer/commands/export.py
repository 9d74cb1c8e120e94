"""The export command: a generator (a checkpoint or a zoo model) as an ONNX model or a
torch.export program, checked against PyTorch after writing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.commands.overrides import check, register, run_hydra
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import ExportConfig
from gan_stylizer.config.validate import validate_export
from gan_stylizer.errors import CheckpointError, ConfigError
from gan_stylizer.inference.export import export_generator
from gan_stylizer.inference.exported import INSTALL_ONNX, difference, load_exported
from gan_stylizer.io.atomic import sweep
from gan_stylizer.zoo import load_any


def run(cfg) -> tuple[Path, Path]:  # cfg: gan_stylizer.config.ExportConfig
    """Export cfg.ckpt's generator; with cfg.check, compare it with PyTorch. Returns the paths."""

    validate_export(cfg)
    out = Path(cfg.output or Path(cfg.ckpt).with_suffix(f".{cfg.format}")).expanduser()
    if out.suffix != f".{cfg.format}":
        raise ConfigError(f"output={out}: format={cfg.format} writes a .{cfg.format} file")
    if out.exists() and not cfg.overwrite:
        raise ConfigError(f"output={out} exists (overwrite=true replaces it)")
    generator, label = load_any(cfg.ckpt)  # a checkpoint file, or a zoo name
    for line in sweep(out.parent):
        print(line)
    print(f"export: {label} as {cfg.format} (tracing and writing take a few seconds)", flush=True)
    try:
        model_path, info_path = export_generator(generator, cfg.format, out, label, cfg.ckpt)
    except ImportError as err:
        raise ConfigError(f"format={cfg.format} needs {err.name}: {INSTALL_ONNX}") from None
    print(f"wrote {model_path} and {info_path}")
    if cfg.check:
        apply, _ = load_exported(model_path, torch.device("cpu"))
        diff = difference(apply, generator)
        print(f"check: max |export - PyTorch| = {diff:.2g} on a 101x67 image")
        if not diff <= 1e-3:  # NaN fails too: a NaN comparison is false
            model_path.unlink(missing_ok=True)
            info_path.unlink(missing_ok=True)
            raise CheckpointError(
                f"{cfg.ckpt}: the export differs from PyTorch by {diff:.3g}; nothing kept"
            )
    return model_path, info_path


GROUPS = ()
# file names: reserved characters in them get the quoting
PATH_KEYS = ("ckpt", "output")
register(
    "export",
    ExportConfig,
    GROUPS,
    usage=(
        "python scripts/export.py ckpt=ZOO_NAME|last.ckpt [format=onnx|pt2] [output=FILE]"
        "   (or: gan-stylizer export ...)"
    ),
    about=(
        "Writes the generator as an ONNX model or a torch.export program with dynamic "
        "batch, height and width, and <file>.json beside it with the pixel convention."
    ),
)


@hydra.main(config_path="../configs", config_name="export", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with fail_cleanly():
        run(to_dataclass(cfg, ExportConfig))


def main() -> None:
    """The command line: checked against the schema, then Hydra."""
    check(sys.argv[1:], ExportConfig, GROUPS, PATH_KEYS)
    run_hydra(_hydra_main)


if __name__ == "__main__":
    main()
