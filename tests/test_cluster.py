"""Cluster training on CPU: DDP with two gloo processes, SLURM requeue by Lightning (simulated
environment, `scontrol` patched), the submitit launcher's job shape, the sbatch script, and one
download of the painting per node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_overrides
from test_resume import assert_same_training_state
from test_training import tiny_config

from gan_stylizer import styles
from gan_stylizer.config.schema import StyleConfig
from gan_stylizer.errors import StyleError
from gan_stylizer.styles import StyleSpec, fetch_style, sha256_file
from gan_stylizer.training.cluster import RequeueAtBatchEnd, slurm_environment
from gan_stylizer.training.run import build_trainer, run

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "src" / "gan_stylizer" / "configs"
SLURM_TASK = {  # what srun sets for a one-task job
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "train",
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_NNODES": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


@pytest.fixture
def slurm_task(monkeypatch):
    for key, value in SLURM_TASK.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MASTER_PORT", "12910")  # Lightning sets it under SLURM; restored after
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)


def test_exactly_one_requeue_mechanism_per_path(tmp_path, photo_dir, painting, monkeypatch):
    for key in SLURM_TASK:
        monkeypatch.delenv(key, raising=False)
    assert slurm_environment() is None  # no SLURM: nothing requeues
    for key, value in SLURM_TASK.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MASTER_PORT", "12910")
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    cfg = tiny_config(photo_dir, painting)

    # Plain sbatch + srun: Lightning requeues on SIGUSR1 (and saves its hpc checkpoint),
    # at a batch end.
    env = slurm_environment()
    assert env.auto_requeue and env.requeue_signal == signal.SIGUSR1
    trainer = build_trainer(cfg, tmp_path / "a")
    assert trainer._accelerator_connector.cluster_environment.auto_requeue
    (deferred,) = [c for c in trainer.callbacks if isinstance(c, RequeueAtBatchEnd)]
    assert deferred.signum == signal.SIGUSR1 and deferred.save_first is None

    # Submitted by submitit: its SIGUSR2 handler requeues, after last.ckpt is saved at a batch
    # end; Lightning's auto-requeue is off.
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    trainer = build_trainer(cfg, tmp_path / "b")
    assert not trainer._accelerator_connector.cluster_environment.auto_requeue
    (deferred,) = [c for c in trainer.callbacks if isinstance(c, RequeueAtBatchEnd)]
    assert deferred.signum == signal.SIGUSR2 and deferred.save_first is not None


def test_sigusr1_under_slurm_saves_between_batches_requeues_and_resumes_exactly(
    tmp_path, photo_dir, painting, slurm_task, monkeypatch
):
    from lightning.pytorch.trainer.connectors import signal_connector

    import gan_stylizer.training.run as train_mod

    requeues = []
    monkeypatch.setattr(signal_connector, "call", lambda cmd, **_: requeues.append(cmd) or 0)

    class Preempted(train_mod.StylizerSystem):
        def training_step(self, content, batch_idx):
            if self.g_step == 1:  # SLURM's warning arrives in the middle of the second batch
                os.kill(os.getpid(), signal.SIGUSR1)
            if self.g_step == 3:  # and SLURM kills the job a little later
                raise RuntimeError("killed by SLURM")
            return super().training_step(content, batch_idx)

    settings = {"trainer.steps": 5, "trainer.ckpt_every": 100, "trainer.keep_every": 0}
    monkeypatch.setattr(train_mod, "StylizerSystem", Preempted)
    out = tmp_path / "slurm-4242"
    with pytest.raises(RuntimeError, match="killed by SLURM"):
        run(tiny_config(photo_dir, painting, **settings), out)
    monkeypatch.setattr(train_mod, "StylizerSystem", Preempted.__mro__[1])

    assert requeues == [["scontrol", "requeue", "4242"]]
    hpc = out / "checkpoints" / "hpc_ckpt_1.ckpt"
    saved = torch.load(hpc, weights_only=True)  # plain data, like our own checkpoints
    # Saved after the batch that was running, not in its middle (D stepped, G not yet).
    assert saved["gan_stylizer"]["g_step"] == 2 and saved["global_step"] == 4
    assert not (out / "checkpoints" / "last.ckpt").exists()

    # The requeued job: same command, same directory; it resumes from the hpc checkpoint and
    # ends where an uninterrupted run ends.
    run(tiny_config(photo_dir, painting, **settings), out)
    assert not hpc.exists()  # superseded by last.ckpt
    run(tiny_config(photo_dir, painting, **settings), tmp_path / "straight")
    assert_same_training_state(
        out / "checkpoints" / "last.ckpt", tmp_path / "straight" / "checkpoints" / "last.ckpt"
    )
    info = json.loads((out / "run_info.json").read_text())
    assert info["slurm"]["job_id"] == "4242" and info["resumed"][0]["at_step"] == 2


def test_d_draws_painting_crops_per_rank_and_step(tmp_path, photo_dir, painting, monkeypatch):
    from gan_stylizer import seeding, system

    keys = []

    def recording(*parts):
        keys.append(parts)
        return seeding.seeded_generator(*parts)

    monkeypatch.setattr(system, "seeded_generator", recording)
    run(tiny_config(photo_dir, painting, seed=7), tmp_path / "run")
    # The rank is part of the key (rank 1 draws other crops than rank 0), and so is the step.
    assert keys == [(7, "style_crops", 0, 0), (7, "style_crops", 0, 1)]
    image = torch.rand(1, 3, 40, 60)

    def crops(*key):
        return system.random_style_crops(image, 2, 16, (0.8, 1.25), seeding.seeded_generator(*key))

    assert torch.equal(crops(7, "style_crops", 0, 0), crops(7, "style_crops", 0, 0))
    assert not torch.equal(crops(7, "style_crops", 0, 0), crops(7, "style_crops", 1, 0))


def test_dataloader_workers_ignore_the_requeue_signals(photo_dir):
    from gan_stylizer.config.schema import DataConfig
    from gan_stylizer.training.data import PhotoDataModule

    loader = PhotoDataModule(DataConfig(source="folder", root=str(photo_dir)), photo_dir)
    worker_init = loader.train_dataloader().worker_init_fn
    signals = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)
    before = {s: signal.getsignal(s) for s in signals}
    try:
        worker_init(0)  # what each worker process runs first
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in signals)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_only_local_rank_zero_downloads_the_painting(tmp_path, painting, monkeypatch):
    spec = StyleSpec("starry_night", "test", "https://example.invalid/p.png", sha256_file(painting))
    monkeypatch.setitem(styles.REGISTRY, "starry_night", spec)
    downloads = []

    def fake_download(spec, target, timeout):
        downloads.append(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(painting.read_bytes())

    monkeypatch.setattr(styles, "_download", fake_download)
    cache = tmp_path / "styles"
    cfg = StyleConfig(name="starry_night")

    with pytest.raises(StyleError, match="waited 0.2 s for local rank 0"):
        fetch_style(cfg, cache, local_rank=1, wait_s=0.2, poll_s=0.02)
    assert downloads == []
    # Rank 1 waits while rank 0 downloads, then uses the verified file.
    found = []
    waiter = threading.Thread(
        target=lambda: found.append(fetch_style(cfg, cache, local_rank=1, poll_s=0.02))
    )
    waiter.start()
    time.sleep(0.2)
    assert found == [] and waiter.is_alive()
    assert fetch_style(cfg, cache, local_rank=0) == cache / "starry_night.jpg"
    waiter.join(timeout=10)
    assert found == [cache / "starry_night.jpg"] and len(downloads) == 1


def fake_srun(folder: Path) -> Path:
    """An `srun` that prints the command it was given, one argument per line."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "srun").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (folder / "srun").chmod(0o755)
    return folder


def test_submitit_slurm_launcher_shapes_the_job_like_the_trainer(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")  # the `cluster` extra, in `dev`
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import gan_stylizer.commands.train  # noqa: F401  (registers train_schema and its help)

    overrides = [
        "hydra/launcher=submitit_slurm",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
        f"hydra.sweep.dir={tmp_path}",
    ]
    with (
        warnings.catch_warnings(),  # the schema-matching note that train.py silences too
        initialize_config_dir(
            config_dir=str(REPO / "src" / "gan_stylizer" / "configs"),
            version_base="1.3",
            job_name="t",
        ),
    ):
        warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_slurm' is valid")
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    params = launcher.params
    assert (params["tasks_per_node"], params["nodes"], params["gpus_per_node"]) == (4, 2, 4)
    assert params["max_num_timeout"] > 0  # requeued after a timeout, not only on preemption

    # The sbatch file that the launcher's own launch() would submit (map_array intercepted).
    monkeypatch.setenv("PATH", f"{fake_srun(tmp_path / 'bin')}:{os.environ['PATH']}")
    executors = []
    monkeypatch.setattr(
        submitit.AutoExecutor, "map_array", lambda self, *args: executors.append(self) or []
    )
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["loss.alpha=1"], ["loss.alpha=2"]], initial_job_idx=0)
    sbatch = executors[0]._executor._make_submission_file_text("python -m job", "0")
    for line in (
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@120",
        "export SUBMITIT_EXECUTOR=slurm",
    ):
        assert line in sbatch, line


def test_sbatch_script_runs_one_task_per_device_with_lightning_requeue(tmp_path):
    script = REPO / "scripts" / "slurm" / "train.sbatch"
    header = dict(
        line.removeprefix("#SBATCH --").split("=", 1)
        for line in script.read_text().splitlines()
        if line.startswith("#SBATCH --") and "=" in line
    )
    assert header["signal"] == "SIGUSR1@90" and "requeue" in script.read_text()
    assert header["ntasks-per-node"] == header["gpus-per-node"]
    env = {
        **os.environ,
        "PATH": f"{fake_srun(tmp_path / 'bin')}:{os.environ['PATH']}",
        "SLURM_SUBMIT_DIR": str(REPO),
        "SLURM_NTASKS_PER_NODE": header["ntasks-per-node"],
        "SLURM_JOB_NUM_NODES": "2",
        "PYTHON": "python3",
    }
    out = subprocess.run(
        ["bash", str(script), "experiment=starry_night", "data.root=/photos"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "python3",
        "train.py",
        f"trainer.devices={header['ntasks-per-node']}",
        "trainer.num_nodes=2",
        "experiment=starry_night",
        "data.root=/photos",
    ]


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_into_one_run_directory(tmp_path, photo_dir, painting):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            *tiny_train_overrides(photo_dir, painting),
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.steps=3",
            "trainer.image_every=3",
            "trainer.ckpt_every=3",
            "trainer.keep_every=3",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "MEMBER: 2/2" in output  # Lightning's second rank joined the gloo group
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_stylizer"]["g_step"] == 3
    # One run directory: one set of checkpoints, one TensorBoard log, samples from rank 0 only.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.ckpt",
        "step_000003.ckpt",
    ]
    folders = sorted(p.name for p in run_dir.iterdir() if p.is_dir())
    assert folders == [".hydra", "checkpoints", "samples", "tb"]
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "step_000000.png",
        "step_000003.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["painting.png", "photos", "run"]
    assert json.loads((run_dir / "metrics.json").read_text())["g_step"] == 3
