"""Which checkpoint a run resumes (ckpt_path=auto | null | last | a file | a run folder), and
the checks that it is the same run: the same model and painting, and under auto the same
settings except those of a session (SESSION_KEYS).
"""

from __future__ import annotations

import logging
from pathlib import Path

from gan_stylizer.checkpoints import load_checkpoint
from gan_stylizer.config.schema import TrainConfig
from gan_stylizer.errors import CheckpointError, ConfigError
from gan_stylizer.plain import to_plain
from gan_stylizer.system import CHECKPOINT_FORMAT

log = logging.getLogger(__name__)

# What may change between the sessions of one run under ckpt_path=auto: the budget, the
# hardware, where the files are, how often to log. Anything else (loss, data, model, seed,
# optimizer) means the command describes another run.
SESSION_KEYS = (
    "name",
    "ckpt_path",
    "data_dir",
    "data.root",
    "data.val_root",
    "data.num_workers",
    "trainer.steps",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.threads",
    "trainer.ckpt_every",
    "trainer.keep_every",
    "trainer.image_every",
    "trainer.log_every",
    "trainer.max_nonfinite",
)


def run_checkpoints(ckpt_dir: Path) -> list[Path]:
    """A run directory's resumable checkpoints: last.ckpt, and the hpc_ckpt_N.ckpt that
    Lightning's SLURM requeue writes (trainer.default_root_dir is the checkpoints folder)."""
    found = [ckpt_dir / "last.ckpt", *sorted(ckpt_dir.glob("hpc_ckpt_*.ckpt"))]
    return [p for p in found if p.is_file()]


def newest_checkpoint(ckpt_dir: Path) -> tuple[Path, dict] | None:
    """(path, contents) of the run's checkpoint with the most generator steps. An unreadable
    one (an hpc checkpoint whose write was killed) is skipped with a warning."""
    best: tuple[Path, dict, int] | None = None
    problems = []
    for path in run_checkpoints(ckpt_dir):
        try:
            ckpt = load_checkpoint(path)
            step = int(ckpt["gan_stylizer"]["g_step"])
        except (CheckpointError, KeyError, TypeError, ValueError) as err:
            problems.append(f"{path.name}: {err}")
            log.warning("cannot resume from %s: %s", path, err)
            continue
        if best is None or step > best[2]:
            best = (path, ckpt, step)
    if best is None and problems:
        raise ConfigError(
            f"{ckpt_dir} holds checkpoints but none can be resumed ({'; '.join(problems)}); "
            "move them away to start afresh, or name one with ckpt_path="
        )
    return (best[0], best[1]) if best else None


def choose_resume(cfg: TrainConfig, out_dir: Path) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume and its contents, (None, None) for a fresh run.

    auto: this run directory's newest checkpoint (last.ckpt or a SLURM hpc_ckpt_N.ckpt) if any,
    so that rerunning a command (or a requeued job) continues its run; it must describe the same
    run (see SESSION_KEYS). null: fresh, refused where a run exists. last: this run's newest,
    else the newest last.ckpt of a sibling run (same parent folder). A run directory: its
    last.ckpt. A file: itself. The last three may change the loss or data, not model or style.
    """
    ckpt_dir = out_dir / "checkpoints"
    mode = cfg.ckpt_path
    if not mode:
        if run_checkpoints(ckpt_dir):
            raise ConfigError(
                f"{out_dir} already holds a run ({ckpt_dir}); resume it with ckpt_path=auto, "
                "or choose another hydra.run.dir"
            )
        return None, None
    if mode == "auto":
        own = newest_checkpoint(ckpt_dir)
        if own is not None:
            check_same_run(own[0], own[1], cfg)
            return own
        return None, None
    if mode == "last":
        own = newest_checkpoint(ckpt_dir)
        if own is not None:
            check_resumable(own[0], own[1], cfg)
            return own
        siblings = sorted(
            out_dir.parent.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not siblings:
            raise ConfigError(
                f"ckpt_path=last: no checkpoints/last.ckpt in {out_dir} or its sibling runs"
            )
        path = siblings[-1]
    else:
        path = Path(mode).expanduser()
        if path.is_dir():
            path = path / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise ConfigError(f"ckpt_path={mode}: {path} does not exist")
    ckpt = load_checkpoint(path)
    check_resumable(path, ckpt, cfg)
    return path, ckpt


def saved_config(path: Path, ckpt: dict) -> dict:
    """The config a gan-stylizer training checkpoint was trained with."""
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    state = ckpt.get("gan_stylizer")
    if not isinstance(config, dict) or not isinstance(state, dict) or "g_step" not in state:
        raise ConfigError(f"ckpt_path: {path} is not a gan-stylizer training checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"ckpt_path: {path} was trained by an earlier gan-stylizer (checkpoint format "
            f"{state.get('format')}, before the strength dial's settings were built in) and "
            f"cannot be resumed: start a new run (it still stylizes: stylize.py ckpt={path})"
        )
    return config


def check_resumable(path: Path, ckpt: dict, cfg: TrainConfig) -> None:
    """Refuse to resume a checkpoint of another model or painting: Lightning would fail on the
    weights (a traceback) or, worse, silently go on training with a different style."""
    # A key the checkpoint predates (say model.generator.conditioned) had its default then.
    saved = flat_config(to_plain(TrainConfig())) | flat_config(saved_config(path, ckpt))
    now = flat_config(to_plain(cfg))
    for key in ("model", "style"):
        changed = [k for k in now if k.startswith(f"{key}.") and saved.get(k) != now[k]]
        if changed:
            first = changed[0]
            raise ConfigError(
                f"ckpt_path: {path} was trained with {first}={saved.get(first)}, this run asks "
                f"for {first}={now[first]}; resume with the same {key} settings or start a new run"
            )


def flat_config(config: dict, prefix: str = "") -> dict:
    """A nested config as {dotted key: value} (loss.style_layers stays one value)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "loss.style_layers":
            flat |= flat_config(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def check_same_run(path: Path, ckpt: dict, cfg: TrainConfig) -> None:
    """ckpt_path=auto resumes a run directory only with the settings it was started with (up to
    SESSION_KEYS): another loss or seed in the same directory is another run, not a restart."""
    saved, now = flat_config(saved_config(path, ckpt)), flat_config(to_plain(cfg))
    changed = sorted(
        k for k in saved.keys() & now.keys() if k not in SESSION_KEYS and saved[k] != now[k]
    )
    if changed:
        first = changed[0]
        more = f" (and {len(changed) - 1} more: {', '.join(changed[1:])})" if changed[1:] else ""
        raise ConfigError(
            f"ckpt_path=auto: {path.parent.parent} holds a run with {first}={saved[first]}, this "
            f"command asks for {first}={now[first]}{more}; use another hydra.run.dir for a new "
            f"run, or continue this one with new settings: ckpt_path={path}"
        )
