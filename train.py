"""python train.py style=starry_night [data=folder data.root=DIR] [loss.alpha=...] [-m sweeps]

A thin Hydra shim: compose and validate the config, then gan_stylizer.train.run() does the work
in Hydra's run directory.
"""

import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gan_stylizer.cli import fail_cleanly
from gan_stylizer.config import TrainConfig, to_dataclass

ConfigStore.instance().store(name="train_schema", node=TrainConfig)
# configs/hydra/launcher/submitit_slurm.yaml replaces the plugin's config of that name on purpose
# (the same keys, with the job shaped like the trainer); Hydra still validates it against the
# plugin's schema and says so in a deprecation warning that is only noise here.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/submitit_slurm' is validated against ConfigStore"
)


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with fail_cleanly():
        from gan_stylizer.train import run

        ckpt = run(to_dataclass(cfg, TrainConfig), Path(HydraConfig.get().runtime.output_dir))
        print(f"checkpoint: {ckpt}")


if __name__ == "__main__":
    sys.exit(main())
