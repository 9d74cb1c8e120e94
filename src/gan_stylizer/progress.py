"""Progress as lines, for output that is not a terminal (a log file, a pipe, CI), where a
progress bar's carriage returns would glue every line together."""

from __future__ import annotations


def clock(seconds: float) -> str:
    """42 -> '0:42', 3725 -> '1:02:05'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(
    label: str, step: int, total: int, seconds_per_step: float | None, shown: dict
) -> str:
    """`train: step 120/1000 (12%), 3.01 s/step, ETA 44:10, g_style 1.2e+05, ...`."""
    parts = [f"{label}: step {step}/{total} ({100 * step // max(total, 1)}%)"]
    if seconds_per_step is not None:
        eta = clock(max(total - step, 0) * seconds_per_step)
        parts.append(f"{seconds_per_step:.2f} s/step, ETA {eta}")
    parts += [f"{key} {value}" for key, value in shown.items()]
    return ", ".join(parts)
