"""python stylize.py input=photo.jpg [ckpt=outputs/<run>/checkpoints/last.ckpt] [output=...]

Without ckpt=, the per-image optimization (Gatys et al.): style=<name> picks the painting.
A thin Hydra shim: compose and validate the config, then gan_stylizer.stylize.run() does the work.
"""

import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from gan_stylizer.cli import fail_cleanly
from gan_stylizer.config import StylizeConfig, to_dataclass

ConfigStore.instance().store(name="stylize_schema", node=StylizeConfig)


@hydra.main(config_path="configs", config_name="stylize", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with fail_cleanly():
        from gan_stylizer.stylize import run

        failures = run(to_dataclass(cfg, StylizeConfig))
        if failures:
            raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main())
