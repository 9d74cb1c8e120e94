"""The entry points as a user runs them: subprocesses writing real images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_train_overrides, write_photo
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def cli(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_stylize_by_optimization_writes_the_image(tmp_path, painting):
    photo = write_photo(tmp_path / "photo.jpg", (48, 40), seed=3)
    out = tmp_path / "out" / "result.png"
    proc = cli(
        "stylize.py",
        f"input={photo}",
        f"output={out}",
        f"style.path={painting}",
        "style.size=64",
        "size=40",
        "steps=3",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (40, 33)
    assert "3 steps" in proc.stdout
    # Piped: progress as lines (every tenth of the steps, and the last), not a bar.
    assert "optimize: step 3/3 (100%), " in proc.stdout and ", ETA 0:00, loss " in proc.stdout
    assert not list(tmp_path.glob("*.log")) and not (tmp_path / ".hydra").exists()


def test_stylize_refuses_typos_and_bad_types_in_one_clear_message(tmp_path):
    proc = cli("stylize.py", "input=x.jpg", "setps=3", cwd=tmp_path)
    assert proc.returncode != 0
    assert "setps" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("stylize.py", "input=x.jpg", "steps=many", cwd=tmp_path)
    assert proc.returncode != 0
    assert "steps" in proc.stderr and "Traceback" not in proc.stderr


def test_stylize_bad_input_is_one_line_and_nonzero(tmp_path, painting):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    proc = cli("stylize.py", f"input={bad}", f"style.path={painting}", "steps=1", cwd=tmp_path)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.jpg" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("bad_*.png"))
    proc = cli("stylize.py", "input=missing.jpg", f"style.path={painting}", cwd=tmp_path)
    assert proc.returncode == 2 and "missing.jpg" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_style_name_is_a_clear_error(tmp_path):
    photo = write_photo(tmp_path / "photo.png", (32, 32), seed=1)
    proc = cli("stylize.py", f"input={photo}", "style.name=mona_lisa", cwd=tmp_path)
    assert proc.returncode == 2
    assert "mona_lisa" in proc.stderr and "starry_night" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_train_debug_fast_then_stylize_with_the_checkpoint(tmp_path, photo_dir, painting):
    run_dir = tmp_path / "run"
    proc = cli(
        "train.py",
        *tiny_train_overrides(photo_dir, painting),
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The start line names the run's folder, device, precision, budget, painting and data.
    start = f"run debug_test: {run_dir} on cpu, 32, 2 generator steps (0 done); painting"
    assert start in proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("GPU available") == 1  # each log line once
    log = (run_dir / "train.log").read_text()
    assert "step 2/2: g_style" in log and "g_content" in log  # the losses, in the file only
    assert "step 2/2: g_style" not in proc.stdout + proc.stderr
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]  # no copies unless asked
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    # Piped, progress is a line every log_every steps with the budget and an ETA, no bar.
    output = proc.stdout + proc.stderr
    assert "train: step 2/2 (100%), " in proc.stdout and "s/step, ETA 0:00" in proc.stdout
    assert "\r" not in output and "Epoch" not in output and "it/s" not in output
    assert "[lightning" not in output  # the console has the message alone; train.log the rest

    photos = tmp_path / "photos_in"
    write_photo(photos / "a.jpg", (61, 45), seed=5)
    write_photo(photos / "nested" / "b.png", (30, 70), seed=6)
    proc = cli("stylize.py", f"ckpt={ckpt}", f"input={photos}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out_root = tmp_path / "photos_in_debug_test-gan"  # debug runs are named debug_<style>
    assert Image.open(out_root / "a.png").size == (61, 45)
    assert Image.open(out_root / "nested" / "b.png").size == (30, 70)
    assert "done 2, skipped 0, failed 0" in proc.stdout

    # Existing outputs are kept unless overwrite=true; size= sets the long side.
    proc = cli("stylize.py", f"ckpt={ckpt}", f"input={photos}", cwd=tmp_path)
    assert "skipped 2" in proc.stdout
    single = tmp_path / "single.png"
    proc = cli(
        "stylize.py",
        f"ckpt={ckpt}",
        f"input={photos / 'a.jpg'}",
        f"output={single}",
        "size=40",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(single).size == (40, 30)


def test_stylize_with_a_foreign_checkpoint_is_a_clear_error(tmp_path):
    import torch

    photo = write_photo(tmp_path / "photo.png", (32, 32), seed=1)
    foreign = tmp_path / "model.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    proc = cli("stylize.py", f"ckpt={foreign}", f"input={photo}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "model.ckpt" in proc.stderr and "Traceback" not in proc.stderr


def test_a_refused_start_leaves_no_run_folder(tmp_path, photo_dir, painting):
    overrides = [*tiny_train_overrides(photo_dir, painting), f"data.root={tmp_path / 'none'}"]
    proc = cli("train.py", *overrides, cwd=tmp_path)
    assert proc.returncode == 2 and "none" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "outputs").exists()  # neither the run nor outputs/<name>/
    # A folder that holds anything older is never removed.
    mine = tmp_path / "mine"
    (mine / ".hydra").mkdir(parents=True)
    (mine / "train.log").write_text("my notes\n")
    os.utime(mine / "train.log", (0, 0))
    proc = cli("train.py", *overrides, f"hydra.run.dir={mine}", cwd=tmp_path)
    assert proc.returncode == 2 and (mine / "train.log").is_file()
