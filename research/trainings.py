"""Train several recipes to one budget for the comparison scripts (compare.py,
compare_strength.py): each run folder is reused, resumed or trained from scratch by train.py in a
subprocess, at most `jobs` at once.

The budget is exact: a run counts when it holds a checkpoint of exactly `steps` generator steps,
its last.ckpt or the step_NNNNNN.ckpt copy that training keeps (so a longer run of the same
recipe serves a shorter comparison: the learning rates are constant and the data order does not
depend on trainer.steps). A run with fewer steps resumes; one with more and no copy at `steps`
is refused, as is a checkpoint trained with another recipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gan_stylizer.checkpoints import load_checkpoint
from gan_stylizer.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


class UsageError(ConfigError):
    """A bad argument or an unusable run folder: one line, exit 2."""


@dataclass
class Training:
    """One recipe: its run folder, its train.py overrides (without the budget, threads and run
    folder, which ensure_trained adds) and a check of a found checkpoint's config (returns what
    differs from the recipe, or None)."""

    key: str
    run_dir: Path
    overrides: list[str]
    check: Callable[[dict], str | None] = field(default=lambda config: None)
    steps: int | None = None  # this recipe's own budget (None: ensure_trained's steps)


def parse_key_values(
    argv: list[str],
    defaults: dict,
    ints: tuple = (),
    floats: tuple = (),
    hint: str = "",
    folders: tuple = ("train", "val"),
) -> dict:
    """The research scripts' one CLI idiom: key=value arguments over the defaults (a default of
    None with no value given: a required key), numbers converted, and the keys in `folders` that
    the script has (and sheet= when given) checked to be folders; a one-line UsageError
    otherwise."""
    args = dict(defaults)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in args:
            raise UsageError(
                f"unknown argument {item!r}; expected key=value with key in {list(args)}{hint}"
            )
        try:
            args[key] = int(value) if key in ints else float(value) if key in floats else value
        except ValueError:
            raise UsageError(f"{key}={value!r} is not a number") from None
    for key in folders:
        if key in args and (not args[key] or not Path(args[key]).is_dir()):
            raise UsageError(f"{key}= must name a folder of photos, got {args[key]!r}")
    if args.get("sheet") is not None and not Path(args["sheet"]).is_dir():
        raise UsageError(f"sheet= must name a folder of photos, got {args['sheet']!r}")
    return args


def _g_step(ckpt: dict) -> int:
    return int(ckpt.get("gan_stylizer", {}).get("g_step", 0))


def trained_steps(ckpt: Path) -> int:
    return _g_step(load_checkpoint(ckpt))


def checkpoint_config(ckpt: Path) -> dict:
    return load_checkpoint(ckpt)["hyper_parameters"]["config"]


def plan(training: Training, steps: int, threads: int) -> tuple[Path, list[str] | None]:
    """The checkpoint the comparison will use and the train.py overrides still to run (None: a
    checkpoint of exactly `steps` generator steps is there)."""
    checkpoints = training.run_dir / "checkpoints"
    last, kept = checkpoints / "last.ckpt", checkpoints / f"step_{steps:06d}.ckpt"
    overrides = [
        *training.overrides,
        f"trainer.steps={steps}",
        "trainer.keep_every=null",  # a copy per ckpt_every: shorter comparisons read them
        f"trainer.threads={threads}",
        f"hydra.run.dir={training.run_dir}",
    ]
    if not last.is_file():
        print(f"{training.key}: training {steps} steps into {training.run_dir}")
        return last, overrides
    last_steps = 0
    for ckpt in (last, kept):
        if not ckpt.is_file():
            continue
        found = load_checkpoint(ckpt)  # once: a checkpoint is tens of MB
        problem = training.check(found["hyper_parameters"]["config"])
        if problem is not None:
            raise UsageError(f"{ckpt}: {problem}, not the {training.key} recipe")
        done = _g_step(found)
        if done == steps:
            print(f"{training.key}: reusing {ckpt} ({done} steps)")
            return ckpt, None
        if ckpt == last and done < steps:
            print(f"{training.key}: resuming {last} at step {done} of {steps}")
            return last, [*overrides, "ckpt_path=last"]
        last_steps = done if ckpt == last else last_steps
    raise UsageError(
        f"{last} holds {last_steps} generator steps, more than steps={steps}, and no "
        f"{kept.name} of exactly {steps} was kept: use another runs= folder"
    )


def ensure_trained(
    trainings: list[Training], steps: int, jobs: int = 1, threads: int = 0
) -> dict[str, Path]:
    """Each recipe's checkpoint of exactly `steps` generator steps (or its own Training.steps):
    reused, resumed or trained (logs in <run>/compare_train.log), at most `jobs` at once, each
    with threads // jobs threads and at least one (on 2 cores, two 1-thread trainings side by
    side finish sooner than two 2-thread ones in a row; jobs=3 there shares the cores three
    ways). SIGTERM or Ctrl-C stops the trainings too; they save last.ckpt and a rerun resumes."""
    jobs = max(1, min(jobs, len(trainings)))
    total = threads if threads > 0 else len(os.sched_getaffinity(0))
    per_job = max(1, total // jobs) if jobs > 1 else threads
    plans = {t.key: plan(t, t.steps or steps, per_job) for t in trainings}
    pending = [key for key, (_, overrides) in plans.items() if overrides is not None]
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    failed: list[str] = []
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _run_all(plans, pending, running, failed, jobs)
    finally:  # interrupted: stop the trainings too (SIGTERM: they write last.ckpt and exit)
        signal.signal(signal.SIGTERM, previous)
        for proc, _ in running.values():
            proc.terminate()
        for proc, _ in running.values():
            proc.wait()
    if failed:
        raise UsageError("; ".join(failed))
    return {key: ckpt for key, (ckpt, _) in plans.items()}


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_all(plans: dict, pending: list, running: dict, failed: list, jobs: int) -> None:
    while pending or running:
        while pending and len(running) < jobs:
            key = pending.pop(0)
            ckpt, overrides = plans[key]
            run_dir = ckpt.parents[1]
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / "compare_train.log", "a") as log:
                proc = subprocess.Popen(
                    [sys.executable, str(REPO / "train.py"), *overrides],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            running[key] = (proc, time.perf_counter())
        time.sleep(1.0)
        for key, (proc, start) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[key]
            ckpt = plans[key][0]
            if code != 0 or not ckpt.is_file():
                log = ckpt.parents[1] / "compare_train.log"
                failed.append(f"{key}: training failed (exit {code}); see {log}")
            else:
                print(f"{key}: trained in {time.perf_counter() - start:.0f} s")
