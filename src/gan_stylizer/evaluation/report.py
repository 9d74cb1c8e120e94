"""An evaluation's report: metrics.json (per image and mean), metrics.md (the table) and a
contact sheet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from gan_stylizer.evaluation.ruler import mean_metrics
from gan_stylizer.io import atomic
from gan_stylizer.io.images import save_image
from gan_stylizer.io.sheets import make_grid


def format_table(rows: Sequence[tuple[str, dict]], columns: Sequence[tuple[str, str]]) -> str:
    """Markdown table: rows of (label, metrics dict), columns of (key, header)."""

    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, str):
            return value
        if isinstance(value, int):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
            return f"{value:.3g}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"

    lines = [
        "| | " + " | ".join(h for _, h in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    lines += [
        "| " + label + " | " + " | ".join(cell(m.get(k)) for k, _ in columns) + " |"
        for label, m in rows
    ]
    return "\n".join(lines) + "\n"


TABLE_COLUMNS = (
    ("style", "L_style"),
    ("content", "L_content"),
    ("total", "total"),
    ("swd", "SWD"),
    ("palette", "palette ΔE"),
    ("ssim", "SSIM"),
    ("edges", "edges"),
    ("seconds", "s/image"),
    ("peak_mem_mb", "peak MiB"),
)


def write_report(
    out_dir,
    label: str,
    rows: list[dict],
    config: dict,
    sheet_rows: list[list[torch.Tensor]],
    header: str = "",
) -> dict:
    """metrics.json (per image and mean), metrics.md (table) and sheet.png in out_dir."""

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mean = mean_metrics(rows)
    report = {"label": label, "config": config, "mean": mean, "per_image": rows}
    atomic.write_text(out_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
    columns = list(TABLE_COLUMNS)
    for key, head in (
        ("eq_steps", "eq. steps"),
        ("eq_seconds", "eq. s"),
        ("eq_ratio", "eq. ratio"),
    ):
        if key in mean:
            columns.append((key, head))
    table = format_table([(r["name"], r) for r in rows] + [("**mean**", mean)], columns)
    atomic.write_text(out_dir / "metrics.md", f"# {label}\n\n{header}{table}")
    if sheet_rows:
        save_image(make_grid(sheet_rows, height=256, same_width=True), out_dir / "sheet.png")
    return report
