"""python scripts/export.py ckpt=outputs/<run>/checkpoints/last.ckpt [format=onnx|pt2] [output=...]

Writes the trained generator (its EMA weights) as an ONNX model (opset 18) or a torch.export
program, with dynamic batch, height and width, and beside it <model file>.json with the pixel
convention. `python stylize.py ckpt=<model file> input=...` runs it.
"""

import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from gan_stylizer.cli import fail_cleanly
from gan_stylizer.config import ExportConfig, to_dataclass

ConfigStore.instance().store(name="export_schema", node=ExportConfig)


@hydra.main(config_path="../configs", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with fail_cleanly():
        from gan_stylizer.export import run

        run(to_dataclass(cfg, ExportConfig))


if __name__ == "__main__":
    sys.exit(main())
