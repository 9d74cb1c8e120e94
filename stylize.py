"""python stylize.py input=photo.jpg [ckpt=outputs/<run>/checkpoints/last.ckpt] [output=...]
       [strength=0.3 | strength=0,0.5,1 [grid=true]]   (a conditioned generator)

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


def _strength_list_as_hydra_list(argv: list[str]) -> list[str]:
    """strength=0,0.5,1 -> strength=[0,0.5,1]: outside a sweep (-m), Hydra refuses a bare
    comma-separated value as ambiguous; here it can only mean a list of strengths."""
    return [
        f"strength=[{arg.partition('=')[2]}]"
        if arg.startswith("strength=") and "," in arg and "[" not in arg
        else arg
        for arg in argv
    ]


if __name__ == "__main__":
    sys.argv[1:] = _strength_list_as_hydra_list(sys.argv[1:])
    sys.exit(main())
