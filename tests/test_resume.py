"""Exact resume and repeatability: a resumed run equals an uninterrupted one bit for bit, a
seed repeats a CPU run, a killed training process continues at its saved step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_overrides
from test_training import tiny_config

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.errors import ConfigError
from gan_stylizer.training.data import PhotoStream
from gan_stylizer.training.run import run

REPO = Path(__file__).resolve().parents[1]


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until the training subprocess writes path; fail with its output if it exits."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, f"no {path.name} within {timeout:.0f} s"
        time.sleep(0.02)


def assert_same_training_state(a: Path, b: Path) -> None:
    """Weights (G, G_ema, D), both Adam states and every counter are bit-for-bit equal."""
    ckpt_a = torch.load(a, weights_only=True)
    ckpt_b = torch.load(b, weights_only=True)
    assert ckpt_a["gan_stylizer"] == ckpt_b["gan_stylizer"]
    assert ckpt_a["global_step"] == ckpt_b["global_step"]
    state_a, state_b = ckpt_a["state_dict"], ckpt_b["state_dict"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    for opt_a, opt_b in zip(ckpt_a["optimizer_states"], ckpt_b["optimizer_states"], strict=True):
        assert opt_a["state"].keys() == opt_b["state"].keys()
        for index, slots in opt_a["state"].items():
            for name, value in slots.items():
                assert torch.equal(value, opt_b["state"][index][name]), (index, name)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_resumed_run_equals_uninterrupted_run_and_seed_repeats(tmp_path, photo_dir, painting):
    settings = {"trainer.steps": 4, "trainer.warmup_steps": 1}
    run(tiny_config(photo_dir, painting, **settings), tmp_path / "straight")

    # Stopped after 2 steps, then the same run directory with the default ckpt_path=auto, and a
    # DataLoader worker this time: the data stream does not depend on the number of workers.
    resumed = tmp_path / "resumed"
    workers = {"data.num_workers": 1}
    run(tiny_config(photo_dir, painting, **{**settings, **workers, "trainer.steps": 2}), resumed)
    run(tiny_config(photo_dir, painting, **{**settings, **workers}), resumed)
    ckpts = "checkpoints"
    assert_same_training_state(
        tmp_path / "straight" / ckpts / "last.ckpt", resumed / ckpts / "last.ckpt"
    )
    # The same seed repeats a fresh run bit for bit (both runs' step-2 copies); another differs.
    step2 = "checkpoints/step_000002.ckpt"
    assert_same_training_state(tmp_path / "straight" / step2, resumed / step2)
    run(
        tiny_config(photo_dir, painting, **{**settings, "trainer.steps": 2, "seed": 1}),
        tmp_path / "s1",
    )
    other = weights(tmp_path / "s1" / step2)
    same = weights(tmp_path / "straight" / step2)
    assert not torch.equal(
        other["generator.encoder.0.1.weight"], same["generator.encoder.0.1.weight"]
    )

    info = json.loads((resumed / "run_info.json").read_text())
    assert info["resumed"][0]["at_step"] == 2 and info["resumed"][0]["from"].endswith("last.ckpt")
    assert "git_commit" in info and {"torch", "lightning", "hydra-core"} <= set(info["versions"])


def test_auto_resume_refuses_another_run_in_the_same_directory(tmp_path, photo_dir, painting):
    out = tmp_path / "run"
    run(tiny_config(photo_dir, painting), out)
    with pytest.raises(ConfigError, match=r"loss\.alpha=5\.0, this command asks for loss\.alpha=9"):
        run(tiny_config(photo_dir, painting, **{"loss.alpha": 9.0, "trainer.steps": 3}), out)
    # Budget, hardware and logging may change between sessions; the rest may with a path.
    run(tiny_config(photo_dir, painting, **{"trainer.steps": 3, "trainer.log_every": 5}), out)
    assert (
        torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["gan_stylizer"]["g_step"]
        == 3
    )
    cfg = tiny_config(
        photo_dir, painting, **{"loss.alpha": 9.0, "trainer.steps": 4, "ckpt_path": str(out)}
    )
    run(cfg, out)
    assert (
        torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["gan_stylizer"]["g_step"]
        == 4
    )


def test_a_run_from_before_the_dial_was_built_in_is_refused_in_one_line(
    tmp_path, photo_dir, painting
):
    """A checkpoint of format 1 was trained with options that are now built in or gone: it is
    not resumed (by auto, last or a path), and it still stylizes."""
    out = tmp_path / "run"
    last = run(tiny_config(photo_dir, painting), out)
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["gan_stylizer"]["format"] == 2
    ckpt["gan_stylizer"]["format"] = 1
    ckpt["hyper_parameters"]["config"]["loss"]["strength_margin"] = 0.1
    torch.save(ckpt, last)
    refused = r"trained by an earlier gan-stylizer \(checkpoint format 1, .*cannot be resumed"
    for ckpt_path in ("auto", "last", str(last)):
        cfg = tiny_config(photo_dir, painting, **{"trainer.steps": 3, "ckpt_path": ckpt_path})
        with pytest.raises(ConfigError, match=refused):
            run(cfg, out)
    generator, _ = load_generator(last)
    assert generator(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_a_killed_hpc_checkpoint_is_skipped_and_the_newest_readable_one_resumed(
    tmp_path, photo_dir, painting
):
    out = tmp_path / "run"
    run(tiny_config(photo_dir, painting), out)
    (out / "checkpoints" / "hpc_ckpt_1.ckpt").write_bytes(b"PK\x03\x04 cut short by SIGKILL")
    run(tiny_config(photo_dir, painting, **{"trainer.steps": 3}), out)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_stylizer"]["g_step"] == 3
    assert not (out / "checkpoints" / "hpc_ckpt_1.ckpt").exists()  # superseded, removed


def test_sigterm_saves_at_the_batch_end_and_the_run_resumes_exactly(
    tmp_path, photo_dir, painting, monkeypatch
):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import gan_stylizer.training.run as train_mod

    class Terminated(train_mod.StylizerSystem):
        def training_step(self, content, batch_idx):
            if self.g_step == 1:  # `kill`, or SLURM preempting the job, during batch 2
                os.kill(os.getpid(), signal.SIGTERM)
            return super().training_step(content, batch_idx)

    settings = {"trainer.steps": 4, "trainer.ckpt_every": 100}
    out = tmp_path / "run"
    monkeypatch.setattr(train_mod, "StylizerSystem", Terminated)
    with pytest.raises(SIGTERMException):
        run(tiny_config(photo_dir, painting, **settings), out)
    monkeypatch.undo()
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["gan_stylizer"]["g_step"] == 2  # batch 2 completed, then saved
    run(tiny_config(photo_dir, painting, **settings), out)
    run(tiny_config(photo_dir, painting, **settings), tmp_path / "straight")
    assert_same_training_state(
        out / "checkpoints" / "last.ckpt", tmp_path / "straight" / "checkpoints" / "last.ckpt"
    )


def test_ctrl_c_finishes_the_batch_saves_and_the_run_resumes_exactly(
    tmp_path, photo_dir, painting, monkeypatch
):
    import gan_stylizer.training.run as train_mod

    class CtrlC(train_mod.StylizerSystem):
        def training_step(self, content, batch_idx):
            if self.g_step == 1:  # Ctrl-C in the middle of batch 2
                os.kill(os.getpid(), signal.SIGINT)
            return super().training_step(content, batch_idx)

    settings = {"trainer.steps": 4, "trainer.ckpt_every": 100}
    out = tmp_path / "run"
    # What was there before the run: Python's handler, or SIG_IGN where the tests were started
    # in the background (a shell without job control ignores SIGINT for them).
    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(train_mod, "StylizerSystem", CtrlC)
    with pytest.raises(train_mod.TrainingInterrupted, match="generator step 2 of 4"):
        run(tiny_config(photo_dir, painting, **settings), out)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["gan_stylizer"]["g_step"] == 2  # batch 2 completed, then saved
    assert not (out / "metrics.json").exists()  # summed up when the run completes
    run(tiny_config(photo_dir, painting, **settings), out)
    run(tiny_config(photo_dir, painting, **settings), tmp_path / "straight")
    assert_same_training_state(
        out / "checkpoints" / "last.ckpt", tmp_path / "straight" / "checkpoints" / "last.ckpt"
    )


def test_ctrl_c_in_the_last_batch_lets_the_run_finish(tmp_path, photo_dir, painting, monkeypatch):
    import gan_stylizer.training.run as train_mod

    class CtrlCLast(train_mod.StylizerSystem):
        def training_step(self, content, batch_idx):
            if self.g_step == 2:  # batch 3 of 3
                os.kill(os.getpid(), signal.SIGINT)
            return super().training_step(content, batch_idx)

    monkeypatch.setattr(train_mod, "StylizerSystem", CtrlCLast)
    out = tmp_path / "run"
    run(tiny_config(photo_dir, painting, **{"trainer.steps": 3}), out)  # no TrainingInterrupted
    assert (out / "metrics.json").exists()
    assert (
        torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["gan_stylizer"]["g_step"]
        == 3
    )


def test_a_second_ctrl_c_stops_at_once_and_saves_that_moment(
    tmp_path, photo_dir, painting, monkeypatch
):
    import gan_stylizer.training.run as train_mod

    class CtrlCTwice(train_mod.StylizerSystem):
        def training_step(self, content, batch_idx):
            if self.g_step == 1:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)  # raises KeyboardInterrupt here
            return super().training_step(content, batch_idx)

    monkeypatch.setattr(train_mod, "StylizerSystem", CtrlCTwice)
    out = tmp_path / "run"
    with pytest.raises(SystemExit):  # Lightning's KeyboardInterrupt path: exit 1
        run(
            tiny_config(photo_dir, painting, **{"trainer.steps": 4, "trainer.ckpt_every": 100}), out
        )
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left it ignored
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["gan_stylizer"]["g_step"] == 1  # batch 2 was cut short


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_saves_and_exits_130_without_a_traceback(
    tmp_path, photo_dir, painting
):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        str(REPO / "train.py"),
        *tiny_train_overrides(photo_dir, painting),
        "trainer.steps=400",
        "trainer.ckpt_every=2",
        "trainer.keep_every=2",
        "trainer.image_every=1000",
        "data.num_workers=1",
        f"hydra.run.dir={run_dir}",
    ]
    # Its own process group, which a terminal's Ctrl-C signals whole (loader worker included).
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_for_file(run_dir / "checkpoints" / "step_000002.ckpt", proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    at = saved["gan_stylizer"]["g_step"]
    assert f"interrupted at generator step {at} of 400" in err and 2 <= at < 400
    assert not list((run_dir / "checkpoints").glob(".*tmp*"))


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(
    tmp_path, photo_dir, painting, monkeypatch
):
    import errno

    from lightning.pytorch.strategies import Strategy

    from gan_stylizer.commands.cli import fail_cleanly
    from gan_stylizer.training.callbacks import CheckpointWriteError

    real_save = Strategy.save_checkpoint
    writes = []

    def save_until_the_disk_fills(self, checkpoint, filepath, *args, **kwargs):
        writes.append(filepath)
        if len(writes) == 2:  # the second checkpoint: half written, then ENOSPC
            Path(filepath).write_bytes(b"PK\x03\x04half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, checkpoint, filepath, *args, **kwargs)

    monkeypatch.setattr(Strategy, "save_checkpoint", save_until_the_disk_fills)
    out = tmp_path / "run"
    cfg = tiny_config(photo_dir, painting, **{"trainer.steps": 4, "trainer.ckpt_every": 1})
    with pytest.raises(CheckpointWriteError) as info:
        run(cfg, out)
    message = str(info.value)
    assert "generator step 2 (No space left on device)" in message and "intact" in message
    ckpts = out / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["gan_stylizer"]["g_step"] == 1
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step_000001.ckpt"]
    with pytest.raises(SystemExit) as exit_info, fail_cleanly():
        raise info.value
    assert exit_info.value.code == 1
    monkeypatch.undo()
    run(cfg, out)  # space freed: the same command resumes at step 1 and completes
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["gan_stylizer"]["g_step"] == 4


def test_photo_stream_is_sharded_by_rank_and_resumable():
    def take(stream: PhotoStream, n: int) -> list[tuple[int, int]]:
        it = iter(stream)
        return [next(it) for _ in range(n)]

    n_files, batch = 5, 2
    one = take(PhotoStream(n_files, batch, seed=0), 20)  # 10 batches on one rank
    # Two ranks split each global batch of 2 x batch: different samples per rank, together the
    # samples of a single rank with twice the batch.
    rank0 = take(PhotoStream(n_files, batch, seed=0, rank=0, world_size=2), 10)
    rank1 = take(PhotoStream(n_files, batch, seed=0, rank=1, world_size=2), 10)
    interleaved = [s for b in range(5) for s in rank0[2 * b : 2 * b + 2] + rank1[2 * b : 2 * b + 2]]
    assert interleaved == one
    assert not set(rank0) & set(rank1)
    # Every photo once per epoch of n_files samples, in a new order each epoch.
    epochs = [[photo for photo, _ in one[e * n_files : (e + 1) * n_files]] for e in range(4)]
    assert all(sorted(e) == list(range(n_files)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1
    # Starting at batch 3 (a run resumed at generator step 3) continues the same stream.
    assert take(PhotoStream(n_files, batch, seed=0, start=3), 14) == one[6:20]
    assert take(PhotoStream(n_files, batch, seed=1), 20) != one


@pytest.mark.slow
def test_a_training_process_killed_with_sigkill_resumes_at_its_saved_step(
    tmp_path, photo_dir, painting
):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        str(REPO / "train.py"),
        *tiny_train_overrides(photo_dir, painting),
        "trainer.steps=24",
        "trainer.ckpt_every=2",
        "trainer.keep_every=2",
        "trainer.image_every=100",
        f"hydra.run.dir={run_dir}",
    ]
    first = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wait_for_file(run_dir / "checkpoints" / "step_000004.ckpt", first)
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=60) == -signal.SIGKILL
    first.stdout.close()
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    at = saved["gan_stylizer"]["g_step"]
    assert 4 <= at < 24

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"at generator step {at}" in again.stderr + again.stdout
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["gan_stylizer"]["g_step"] == 24
    assert final["global_step"] == 48  # 2 optimizer steps per generator step, none repeated
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps_this_session"] == 24 - at
    info = json.loads((run_dir / "run_info.json").read_text())
    assert [r["at_step"] for r in info["resumed"]] == [at]
