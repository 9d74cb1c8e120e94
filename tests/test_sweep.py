"""Sweeps of alpha/beta: readable run folders, the default grid, the ranked report with its
alpha x beta contact sheet, and sweeps run by Hydra's basic launcher and by submitit."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_overrides, write_checkpoint, write_photo

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.io.images import load_image, resize_long_side
from gan_stylizer.training.sweep import collect_runs, contact_sheet, rank_runs, write_report

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "src" / "gan_stylizer" / "configs"


def compose_train(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import gan_stylizer.commands.train  # noqa: F401  (registers train_schema and its help)

    with (
        warnings.catch_warnings(),
        initialize_config_dir(
            config_dir=str(REPO / "src" / "gan_stylizer" / "configs"),
            version_base="1.3",
            job_name="t",
        ),
    ):
        warnings.simplefilter("ignore")
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_run_folders_are_named_by_their_overrides_without_paths(monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = compose_train(
        [
            "experiment=sweep_alpha_beta",
            "data.root=/data/photos/train",
            "style.path=/art/my painting.jpg",
            "trainer.devices=2",
            "loss.alpha=2",
            "loss.beta=0.5",
            "trainer.steps=300",
        ]
    )
    # Paths would nest folders; devices and the experiment do not change the result.
    assert cfg.hydra.job.override_dirname == "loss.alpha=2,loss.beta=0.5,trainer.steps=300"
    with open_dict(cfg):  # what a launcher sets for each job before it names its folder
        cfg.hydra.job.num = 3
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        assert cfg.hydra.sweep.subdir == "3_loss.alpha=2,loss.beta=0.5,trainer.steps=300"
    finally:
        HydraConfig.instance().cfg = previous
    # The default grid: 3 x 2 points, six different alpha/beta ratios around the default 5.
    params = cfg.hydra.sweeper.params
    alphas = [float(a) for a in params["loss.alpha"].split(",")]
    betas = [float(b) for b in params["loss.beta"].split(",")]
    ratios = {a / b for a in alphas for b in betas}
    assert len(alphas) * len(betas) == len(ratios) == 6 and 5.0 in ratios
    # Under SLURM the run folder is the job id: every rank and every requeue of a job agree.
    monkeypatch.setenv("SLURM_JOB_ID", "8675309")
    assert compose_train([]).hydra.run.dir == "outputs/starry_night/8675309"
    monkeypatch.delenv("SLURM_JOB_ID")
    assert compose_train([]).hydra.run.dir.startswith("outputs/starry_night/20")


def fake_run(sweep: Path, name: str, alpha: float, beta: float, seed: int, total: float | None):
    """A sweep point as train.py leaves it: run_info.json, a checkpoint, metrics.json if done."""
    folder = sweep / name
    folder.mkdir(parents=True)
    config = {"loss": {"alpha": alpha, "beta": beta}, "data": {"val_size": 40}}
    (folder / "run_info.json").write_text(json.dumps({"config": config}))
    write_checkpoint(folder / "checkpoints" / "last.ckpt", seed=seed)
    if total is not None:
        mean = {"total": total, "style": total / 60, "content": total / 2, "swd": 1.0}
        metrics = {
            "g_step": 100,
            "seconds_per_step": 0.5,
            "reference_eval": {"alpha": 50.0, "beta": 1.0, "size": 384, "mean": mean},
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_report_ranks_runs_and_lays_out_alpha_across_beta_down(tmp_path):
    sweep = tmp_path / "multirun"
    fake_run(sweep, "0_loss.alpha=1,loss.beta=1", 1.0, 1.0, seed=0, total=30.0)
    fake_run(sweep, "1_loss.alpha=4,loss.beta=1", 4.0, 1.0, seed=1, total=10.0)
    fake_run(sweep, "2_loss.alpha=1,loss.beta=2", 1.0, 2.0, seed=2, total=None)  # still running
    (sweep / ".submitit").mkdir()  # not a run
    photo = load_image(write_photo(tmp_path / "photo.png", (50, 30), seed=4))

    report = write_report(sweep, photo=photo, size=40)
    with open(sweep / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["rank"], r["run"], r["status"]) for r in rows] == [
        ("1", "1_loss.alpha=4,loss.beta=1", "done"),
        ("2", "0_loss.alpha=1,loss.beta=1", "done"),
        ("", "2_loss.alpha=1,loss.beta=2", "unfinished"),
    ]
    assert float(rows[0]["alpha/beta"]) == 4.0 and float(rows[0]["total"]) == 10.0
    text = report.read_text()
    assert "| 1 | 1_loss.alpha=4,loss.beta=1 | 4 | 1 | 4 | 100 | 10 |" in text
    assert "ranked by `total`" in text and "(contact_sheet.png)" in text
    ranked = rank_runs(collect_runs(sweep), by="total")
    assert [r.folder.name[0] for _, r in rank_runs(collect_runs(sweep), by="swd")][:2] == ["0", "1"]

    # The sheet: columns photo, alpha=1, alpha=4; rows beta=1, beta=2; (4, 2) has no run.
    sheet = load_image(sweep / "contact_sheet.png")
    _, boxes = contact_sheet(ranked, photo, 40)
    assert set(boxes) == {(1.0, 1.0), (4.0, 1.0), (1.0, 2.0), (4.0, 2.0)}
    content = resize_long_side(photo, 40)
    for (alpha, beta), (top, left, h, w) in boxes.items():
        cell = sheet[..., top : top + h, left : left + w]
        if (alpha, beta) == (4.0, 2.0):
            assert (cell - 200 / 255).abs().median() < 0.01  # grey, with a label
            continue
        name = {(1.0, 1.0): "0", (4.0, 1.0): "1", (1.0, 2.0): "2"}[(alpha, beta)]
        (folder,) = sweep.glob(f"{name}_*")
        generator, _ = load_generator(folder / "checkpoints" / "last.ckpt")
        with torch.no_grad():
            expected = generator(content).clamp(0, 1)
        assert (cell - expected).abs().max() <= 1 / 255 + 1e-6, (alpha, beta)
    # Above the cells the photo itself, in the first column of every row.
    top, left, h, w = boxes[(1.0, 1.0)]
    photo_cell = sheet[..., top : top + h, left - w - 6 : left - 6]
    assert (photo_cell - content).abs().max() <= 1 / 255 + 1e-6


def test_report_of_a_folder_without_runs_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sweep_report.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "holds no runs" in out.stderr and "Traceback" not in out.stderr


def test_a_sweep_refuses_to_start_ddp_processes_itself(tmp_path):
    # Lightning would re-run the command line, -m and all, once per extra rank.
    sweep = tmp_path / "multirun"
    command = [sys.executable, str(REPO / "train.py"), "-m", "debug=fast", "loss.alpha=1,2"]
    command += ["trainer.accelerator=cpu", "trainer.devices=2", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "hydra/launcher=submitit_slurm" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(sweep.glob("*/checkpoints"))


def tiny_sweep(photo_dir: Path, painting: Path, sweep: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        *tiny_train_overrides(photo_dir, painting),
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


@pytest.mark.slow
def test_two_point_sweep_writes_two_runs_and_a_report(tmp_path, photo_dir, painting):
    sweep = tmp_path / "multirun"
    command = tiny_sweep(photo_dir, painting, sweep, "loss.alpha=1,20")
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == [
        "0_data=folder,debug=fast,loss.alpha=1,loss.vgg.weights=none,style.name=test",
        "1_data=folder,debug=fast,loss.alpha=20,loss.vgg.weights=none,style.name=test",
    ]
    grids = []
    for name in runs:
        metrics = json.loads((sweep / name / "metrics.json").read_text())
        assert metrics["g_step"] == 2 and metrics["reference_eval"]["mean"]["total"] > 0
        grids.append(load_image(sweep / name / "samples" / "step_000002.png"))
    # The same fixed validation photos (left column of the grid), stylized differently.
    assert grids[0].shape == grids[1].shape
    assert torch.equal(grids[0][..., :8], grids[1][..., :8])
    assert not torch.equal(grids[0], grids[1])

    report = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sweep_report.py"), str(sweep)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    with open(sweep / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["alpha"] for r in rows) == ["1.0", "20.0"]
    assert [r["rank"] for r in rows] == ["1", "2"]
    totals = [float(r["total"]) for r in rows]
    assert totals == sorted(totals)
    sheet = load_image(sweep / "contact_sheet.png")
    assert sheet.shape[-1] > 3 * sheet.shape[-2] / 2  # three columns (photo, 2 alphas), one row
    assert (sweep / "report.md").read_text().count("_data=folder") == 2


def pids_writing_below(folder: Path) -> list[int]:
    """Processes with a file below `folder` open (Linux /proc): the job that runs in it."""
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            targets = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        if any(t.startswith(f"{folder}/") for t in targets):
            pids.append(int(fd_dir.parent.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds jobs through /proc")
def test_submitit_local_sweep_requeues_a_preempted_point_which_resumes(
    tmp_path, photo_dir, painting
):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "multirun"
    command = tiny_sweep(
        photo_dir,
        painting,
        sweep,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "trainer.steps=20",
        "trainer.ckpt_every=1000",  # no periodic last.ckpt: only the one saved at preemption
        "trainer.image_every=2",
        "loss.alpha=1,20",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweeper = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    first = sweep / (
        "0_data=folder,debug=fast,loss.alpha=1,loss.vgg.weights=none,style.name=test,"
        "trainer.steps=20"
    )
    deadline = time.monotonic() + 300
    while not (first / "samples" / "step_000004.png").exists():
        assert sweeper.poll() is None, sweeper.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "job 0 did not reach step 4 within 300 s"
        time.sleep(0.05)
    # Preempt job 0 the way SLURM warns it: submitit's signal (SIGUSR2) to its process, the
    # one that holds the run's train.log open.
    (job0,) = pids_writing_below(first)
    os.kill(job0, signal.SIGUSR2)
    output, _ = sweeper.communicate(timeout=600)
    assert sweeper.returncode == 0, output.decode()[-3000:]

    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name[:2] for p in runs] == ["0_", "1_"]
    for run_dir in runs:
        final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        assert final["gan_stylizer"]["g_step"] == 20
        assert final["global_step"] == 40  # no step repeated or lost across the requeue
        assert json.loads((run_dir / "metrics.json").read_text())["g_step"] == 20
    info = json.loads((first / "run_info.json").read_text())
    (resumed,) = info["resumed"]  # requeued once, resumed from the checkpoint saved at SIGUSR2
    assert 4 <= resumed["at_step"] < 20
    assert "resumed" not in json.loads((runs[1] / "run_info.json").read_text())
