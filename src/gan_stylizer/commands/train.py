"""The train command: compose and validate the config, then gan_stylizer.training.run.run()
does the work in Hydra's run directory. `python train.py` and `gan-stylizer train` call main()."""

import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.commands.overrides import check, register
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import TrainConfig
from gan_stylizer.errors import ConfigError

GROUPS = ("style", "data", "model", "loss", "trainer", "experiment", "debug")
# file names: reserved characters in them get the quoting
PATH_KEYS = ("data.root", "data.val_root", "style.path", "data_dir", "ckpt_path")
register(
    "train",
    TrainConfig,
    GROUPS,
    usage=("python train.py [group=option ...] [key=value ...]   (or: gan-stylizer train ...)"),
    about=(
        "Trains a stylizer (generator + PatchGAN discriminator, Gram style and VGG "
        "content losses) into outputs/<name>/<time>/; the same command resumes it. "
        "Sweeps: -m key=a,b."
    ),
)
# configs/hydra/launcher/submitit_slurm.yaml replaces the plugin's config of that name on purpose
# (the same keys, with the job shaped like the trainer); Hydra still validates it against the
# plugin's schema and says so in a deprecation warning that is only noise here.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/submitit_slurm' is validated against ConfigStore"
)


def refuse_ddp_launch_in_multirun(train_cfg: TrainConfig) -> None:
    """Lightning starts DDP ranks 1..N-1 by running this script again with its command line,
    which in a multirun (-m) would start the whole sweep again in every rank. Under SLURM (the
    submitit launcher) the ranks are SLURM's tasks instead, and nothing is re-run."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from gan_stylizer.training.cluster import choose_strategy

    strategy = choose_strategy(train_cfg.trainer)
    relaunches = strategy.startswith("ddp") and not strategy.startswith(("ddp_spawn", "ddp_fork"))
    if HydraConfig.get().mode == RunMode.MULTIRUN and relaunches and not SLURMEnvironment.detect():
        raise ConfigError(
            f"a sweep (-m) cannot start DDP processes itself (trainer.devices="
            f"{train_cfg.trainer.devices}, trainer.num_nodes={train_cfg.trainer.num_nodes}): "
            "sweep multi-device points with hydra/launcher=submitit_slurm, or run each point "
            "without -m"
        )


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with fail_cleanly():
        from gan_stylizer.training.callbacks import TrainingInterrupted
        from gan_stylizer.training.run import run

        train_cfg = to_dataclass(cfg, TrainConfig)
        refuse_ddp_launch_in_multirun(train_cfg)
        try:
            ckpt = run(train_cfg, Path(HydraConfig.get().runtime.output_dir))
        except TrainingInterrupted as stopped:  # Ctrl-C: saved at a batch end
            print(str(stopped), file=sys.stderr)
            raise SystemExit(130) from None
        print(f"checkpoint: {ckpt}")


def main() -> None:
    """The command line: checked against the schema, then Hydra."""
    check(sys.argv[1:], TrainConfig, GROUPS, PATH_KEYS)
    _hydra_main()


if __name__ == "__main__":
    main()
