"""python research/tb_summary.py run=RUN_DIR: first, last and mean-of-last-10% values of every
scalar a training run logged to TensorBoard, as a markdown table (for notes and comparisons)."""

from __future__ import annotations

import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trainings import UsageError, parse_key_values


def main(argv: list[str]) -> int:
    try:
        args = parse_key_values(argv, {"run": None}, folders=("run",))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run = Path(args["run"])
    tb = run / "tb" if (run / "tb").is_dir() else run
    if not list(tb.glob("events.out.tfevents.*")):
        print(f"error: {tb}: no TensorBoard event files", file=sys.stderr)
        return 1
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    print("| scalar | first (step) | last (step) | mean of last 10% |")
    print("|---|---|---|---|")
    for tag in sorted(acc.Tags()["scalars"]):
        events = acc.Scalars(tag)
        tail = events[-max(1, len(events) // 10) :]
        mean = sum(e.value for e in tail) / len(tail)
        first, last = events[0], events[-1]
        print(
            f"| {tag} | {first.value:.4g} ({first.step}) | {last.value:.4g} ({last.step}) "
            f"| {mean:.4g} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
