"""python train.py style=starry_night [data=folder data.root=DIR] [loss.alpha=...] [-m sweeps]

A thin Hydra shim: compose and validate the config, then gan_stylizer.train.run() does the work
in Hydra's run directory.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gan_stylizer.cli import fail_cleanly
from gan_stylizer.config import TrainConfig, to_dataclass

ConfigStore.instance().store(name="train_schema", node=TrainConfig)


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with fail_cleanly():
        from gan_stylizer.train import run

        ckpt = run(to_dataclass(cfg, TrainConfig), Path(HydraConfig.get().runtime.output_dir))
        print(f"checkpoint: {ckpt}")


if __name__ == "__main__":
    sys.exit(main())
