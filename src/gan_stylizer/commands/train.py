"""The train command: compose and validate the config, then gan_stylizer.training.run.run()
does the work in Hydra's run directory. `python train.py` and `gan-stylizer train` call main()."""

import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.commands.overrides import check, register, run_hydra
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import TrainConfig
from gan_stylizer.errors import ConfigError

STARTED = time.time() - 1  # file times are coarser than this clock on some file systems
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


def drop_if_refused(out_dir: Path, since: float) -> None:
    """A refused start (a config fault, a refused resume...) leaves no run folder behind: the
    folder goes if it holds only what Hydra wrote at this start (.hydra/, train.log), all of it
    written since `since`, and so do the parents that this start created and left empty."""
    try:
        if {p.name for p in out_dir.iterdir()} - {".hydra", "train.log"}:
            return  # the run began (run_info.json, tb/...), or the folder holds other files
        if any(p.lstat().st_mtime < since for p in [out_dir, *out_dir.rglob("*")]):
            return  # something older: not ours to remove
        shutil.rmtree(out_dir)
        cwd = Path.cwd().resolve()
        for parent in out_dir.resolve().parents:  # outputs/<name>/, made for this run
            if parent == cwd or parent in cwd.parents or parent.stat().st_mtime < since:
                break
            parent.rmdir()  # only an empty folder goes; a full one raises and stops here
    except OSError:
        pass


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with fail_cleanly():
        from gan_stylizer.training.callbacks import TrainingInterrupted
        from gan_stylizer.training.run import run

        try:
            train_cfg = to_dataclass(cfg, TrainConfig)
            refuse_ddp_launch_in_multirun(train_cfg)
            ckpt = run(train_cfg, out_dir)
        except TrainingInterrupted as stopped:  # Ctrl-C: saved at a batch end
            print(str(stopped), file=sys.stderr)
            raise SystemExit(130) from None
        except BaseException:
            drop_if_refused(out_dir, STARTED)
            raise
        print(f"checkpoint: {ckpt}")


def check_run_folder(argv: list[str]) -> None:
    """The folder the run will be written to can be made, or one line and exit status 1 before
    Hydra, which would print a traceback (a read-only or missing file system): hydra.run.dir=
    (hydra.sweep.dir= with -m) as given, or outputs/ in the working folder, Hydra's default."""
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [arg.partition("=")[2] for arg in argv if arg.startswith(f"{key}=")]
    folder = given[-1].strip("'\"") if given else "outputs"
    if "${" in folder:
        return  # an interpolation: only Hydra knows where it goes
    path = Path(folder).expanduser()
    existing = next(p for p in [path, *path.parents] if p.exists() or p == p.parent)
    try:  # a probe folder, made and removed at once: the only sure test of a file system
        os.rmdir(tempfile.mkdtemp(prefix=".gan-stylizer-probe-", dir=existing))
    except OSError as err:
        why = err.strerror or str(err)
        print(f"error: {key}={folder}: cannot make the run's folder in {existing} ({why})",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(1) from None


def main() -> None:
    """The command line: checked against the schema, then Hydra."""
    check(sys.argv[1:], TrainConfig, GROUPS, PATH_KEYS, name_keys=("name", "style.name"))
    if not any(arg in ("-h", "--help", "--cfg", "-c") for arg in sys.argv[1:]):
        check_run_folder(sys.argv[1:])
    run_hydra(_hydra_main)


if __name__ == "__main__":
    main()
