"""python scripts/evaluate.py ckpt=outputs/<run>/checkpoints/last.ckpt input=DIR [style=...]
python scripts/evaluate.py method=optimize input=DIR steps=300 snapshots=[100]

Scores a stylizer on a folder of photos under a fixed reference (gan_stylizer.evaluate): style
and content loss, sliced Wasserstein distance to the painting, SSIM and edge agreement with the
photo, seconds and peak memory per image. equal_quality_steps=N (method=gan) also measures how
long the per-image optimization needs to reach the same total loss.
"""

import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from gan_stylizer.cli import fail_cleanly
from gan_stylizer.config import EvaluateConfig, to_dataclass

ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with fail_cleanly():
        from gan_stylizer.evaluate import run

        run(to_dataclass(cfg, EvaluateConfig))


if __name__ == "__main__":
    sys.exit(main())
