"""The report of a sweep (a Hydra multirun folder, `python train.py -m ...`).

Every run is ranked by the evaluation's fixed ruler (the `reference_eval` that each run writes
to metrics.json: caffe VGG19, alpha=50, beta=1, whatever the run trained with), so that runs
trained with different weights compare on one scale. Written beside the runs:
    report.md          the ranked table, and the contact sheet
    report.csv         the same table, full precision
    contact_sheet.png  one photo stylized by every run: alpha across, beta down
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw, ImageFont

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import TrainConfig
from gan_stylizer.errors import ConfigError
from gan_stylizer.io.images import resize_long_side, save_image, tensor_to_pil
from gan_stylizer.styles import data_dir_of
from gan_stylizer.training.data import PhotoDataModule

log = logging.getLogger(__name__)

# Ranking keys of reference_eval.mean: True where lower is better.
RANKINGS = {
    "total": True,
    "style": True,
    "content": True,
    "swd": True,
    "palette": True,
    "ssim": False,
    "edges": False,
}
COLUMNS = (
    "rank",
    "run",
    "alpha",
    "beta",
    "alpha/beta",
    "steps",
    "total",
    "style",
    "content",
    "swd",
    "palette",
    "ssim",
    "edges",
    "s/step",
    "status",
)


@dataclass
class SweepRun:
    """One point of a sweep: its folder, its config as a plain dict, metrics.json if finished."""

    folder: Path
    config: dict
    metrics: dict | None

    @property
    def alpha(self) -> float:
        return float(self.config["loss"]["alpha"])

    @property
    def beta(self) -> float:
        return float(self.config["loss"]["beta"])

    @property
    def checkpoint(self) -> Path | None:
        path = self.folder / "checkpoints" / "last.ckpt"
        return path if path.is_file() else None

    @property
    def status(self) -> str:
        if self.metrics is not None:
            return "done"
        return "unfinished" if self.checkpoint else "no checkpoint"

    def score(self, key: str) -> float | None:
        mean = ((self.metrics or {}).get("reference_eval") or {}).get("mean") or {}
        value = mean.get(key)
        return float(value) if isinstance(value, int | float) else None

    def row(self, rank: int | None) -> dict:
        metrics = self.metrics or {}
        return {
            "rank": rank if rank is not None else "",
            "run": self.folder.name,
            "alpha": self.alpha,
            "beta": self.beta,
            "alpha/beta": self.alpha / self.beta if self.beta else math.inf,
            "steps": metrics.get("g_step", ""),
            **{key: self.score(key) for key in RANKINGS},
            "s/step": metrics.get("seconds_per_step"),
            "status": self.status,
        }


def _read_config(folder: Path) -> dict | None:
    """The run's config: run_info.json (typed, resolved) or else Hydra's .hydra/config.yaml."""
    info = folder / "run_info.json"
    if info.is_file():
        try:
            return json.loads(info.read_text())["config"]
        except (OSError, ValueError, KeyError):
            pass
    hydra = folder / ".hydra" / "config.yaml"
    if hydra.is_file():
        return OmegaConf.to_container(OmegaConf.load(hydra), resolve=False)
    return None


def collect_runs(sweep_dir: Path) -> list[SweepRun]:
    """The runs directly below sweep_dir (folders with a run_info.json or .hydra/config.yaml)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir} is not a folder")
    runs = []
    for folder in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        config = _read_config(folder)
        if config is None:
            continue
        metrics_file = folder / "metrics.json"
        try:
            metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
        except ValueError:
            metrics = None
        runs.append(SweepRun(folder, config, metrics))
    if not runs:
        raise ConfigError(
            f"{sweep_dir} holds no runs (no subfolder with run_info.json or .hydra/config.yaml); "
            "give the folder of a multirun, e.g. multirun/<name>/<time>"
        )
    return runs


def rank_runs(runs: list[SweepRun], by: str = "total") -> list[tuple[int | None, SweepRun]]:
    """(rank, run), best first by reference_eval.mean[by]; runs without it last, unranked."""
    if by not in RANKINGS:
        raise ConfigError(f"by={by!r} is not one of: {', '.join(RANKINGS)}")
    scored = [r for r in runs if r.score(by) is not None]
    scored.sort(key=lambda r: r.score(by) if RANKINGS[by] else -r.score(by))
    ranked: list[tuple[int | None, SweepRun]] = [(i + 1, r) for i, r in enumerate(scored)]
    return ranked + [(None, r) for r in runs if r.score(by) is None]


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return "–" if value is None or value == "" else str(value)


def write_tables(
    ranked: list[tuple[int | None, SweepRun]], out_dir: Path, by: str, title: str
) -> None:
    """report.csv (every column, full precision) and the table of report.md."""
    rows = [run.row(rank) for rank, run in ranked]
    with open(out_dir / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    ref = next(
        (r.metrics["reference_eval"] for _, r in ranked if (r.metrics or {}).get("reference_eval")),
        {},
    )
    better = "lower" if RANKINGS[by] else "higher"
    lines = [
        f"# Sweep report: {title}",
        "",
        f"{len(rows)} runs, ranked by `{by}` ({better} is better) of the fixed evaluation ruler: "
        f"caffe VGG19, alpha={ref.get('alpha', '–')}, beta={ref.get('beta', '–')}, the "
        f"validation photos at {ref.get('size', '–')} px, whatever each run trained with "
        "(`total` = alpha·L_style + beta·L_content on that scale). SSIM and edges: content kept, "
        "higher is more. SWD: texture distance to the painting, lower is closer; palette: "
        "the distance to its colours (ΔE), lower is closer.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if c not in ("run", "status") else "---" for c in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in COLUMNS) + " |" for row in rows]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def _label(draw: ImageDraw.ImageDraw, center: tuple[int, int], text: str, font) -> None:
    """Black text centred on `center` (without `anchor`, which bitmap fonts lack)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = center[0] - (right - left) / 2 - left, center[1] - (bottom - top) / 2 - top
    draw.text((x, y), text, fill="black", font=font)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def contact_sheet(
    ranked: list[tuple[int | None, SweepRun]], photo: torch.Tensor, size: int, pad: int = 6
) -> tuple[Image.Image, dict[tuple[float, float], tuple[int, int, int, int]]]:
    """The photo (RGB [0,1] [1,3,H,W], scaled to long side `size`) stylized by every run's
    EMA generator: alpha across, beta down, both ascending, the photo itself in the first
    column, labels in the margins; a grey cell for a point without a checkpoint. Where several
    runs share a point (another key was swept too) the best-ranked one is shown.

    Returns the sheet and each point's cell box (top, left, height, width) in it."""
    content = resize_long_side(photo.float().cpu(), size)
    h, w = content.shape[-2:]
    alphas = sorted({run.alpha for _, run in ranked})
    betas = sorted({run.beta for _, run in ranked})
    chosen: dict[tuple[float, float], SweepRun] = {}
    for _, run in ranked:
        point = (run.alpha, run.beta)
        if point in chosen:
            log.warning(
                "%s and %s share alpha=%g, beta=%g: the sheet shows %s (ranked higher)",
                chosen[point].folder.name,
                run.folder.name,
                *point,
                chosen[point].folder.name,
            )
            continue
        if run.checkpoint is not None:
            chosen[point] = run

    font = _font(max(12, min(h, w) // 12))
    label_w, label_h = max(80, w // 2), max(24, h // 8)
    width = label_w + (len(alphas) + 1) * (w + pad)
    height = label_h + len(betas) * (h + pad)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    photo_pil = tensor_to_pil(content)

    def column_left(i: int) -> int:  # column 0: the photo; 1..: the alphas
        return label_w + i * (w + pad)

    _label(draw, (column_left(0) + w // 2, label_h // 2), "photo", font)
    for i, alpha in enumerate(alphas, start=1):
        _label(draw, (column_left(i) + w // 2, label_h // 2), f"alpha={alpha:g}", font)
    boxes = {}
    for j, beta in enumerate(betas):
        top = label_h + j * (h + pad)
        _label(draw, (label_w // 2, top + h // 2), f"beta={beta:g}", font)
        sheet.paste(photo_pil, (column_left(0), top))
        for i, alpha in enumerate(alphas, start=1):
            left = column_left(i)
            boxes[(alpha, beta)] = (top, left, h, w)
            run = chosen.get((alpha, beta))
            if run is None:  # a grey cell, its label clipped to it
                cell = Image.new("RGB", (w, h), (200, 200, 200))
                _label(ImageDraw.Draw(cell), (w // 2, h // 2), "no checkpoint", font)
                sheet.paste(cell, (left, top))
                continue
            generator, _ = load_generator(run.checkpoint)
            with torch.no_grad():
                stylized = generator(content).clamp(0, 1)
            sheet.paste(tensor_to_pil(stylized), (left, top))
    return sheet, boxes


def write_report(
    sweep_dir: Path,
    out_dir: Path | None = None,
    by: str = "total",
    photo: torch.Tensor | None = None,
    size: int | None = None,
) -> Path:
    """report.md, report.csv and contact_sheet.png for the sweep in out_dir (default: the sweep
    folder). `photo` defaults to the first validation photo of the first run, `size` to its
    data.val_size. Returns report.md."""
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir else sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(sweep_dir)
    ranked = rank_runs(runs, by)
    write_tables(ranked, out_dir, by, title=str(sweep_dir))
    if any(run.checkpoint for run in runs):
        if photo is None:
            photo = first_validation_photo(runs[0].config)
        size = size or int(runs[0].config["data"]["val_size"])
        sheet, _ = contact_sheet(ranked, photo, size)
        save_image(sheet, out_dir / "contact_sheet.png")
        with open(out_dir / "report.md", "a") as f:
            f.write(
                "\n![one photo stylized by every run: alpha across, beta down](contact_sheet.png)\n"
            )
    return out_dir / "report.md"


def first_validation_photo(config: dict) -> torch.Tensor:
    """The first of a run's fixed validation photos, as its sample grids show it."""

    cfg = to_dataclass(config, TrainConfig)
    images = PhotoDataModule(cfg.data, data_dir_of(cfg.data_dir)).val_images()
    if not images:
        raise ConfigError("the sweep's validation photos cannot be read; give one with --photo")
    return images[0]
