"""Hardening, round two: every value that a user or a file controls is checked before it is
used. Each case of docs/reliability.md's second table, with the behaviour it promises: one line
naming the value and the problem, exit status 2 (1 for a failure of the run), before anything
is written."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_checkpoint, write_photo
from PIL import Image

from gan_stylizer.commands.stylize import run as stylize
from gan_stylizer.config.schema import StylizeConfig
from gan_stylizer.errors import ConfigError, display_path
from gan_stylizer.io import atomic
from gan_stylizer.io.images import IMAGE_EXTENSIONS, MAX_PIXELS
from gan_stylizer.io.names import component_problem, safe_component

REPO = Path(__file__).resolve().parents[1]


def cli(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=180,
    )


def one_error(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def hostile_checkpoint(path: Path, kind: str) -> Path:
    """A checkpoint as training writes one, then made hostile in one way."""
    write_checkpoint(path, channels=4, name="tiny")
    ckpt = torch.load(path, weights_only=True)
    if kind == "nan weights":
        key = next(k for k in ckpt["state_dict"] if k.endswith("weight"))
        ckpt["state_dict"][key] = torch.full_like(ckpt["state_dict"][key], float("nan"))
    elif kind == "config is text":
        ckpt["hyper_parameters"]["config"] = "model: generator"
    elif kind == "state_dict is a list":
        ckpt["state_dict"] = [1, 2, 3]
    elif kind == "weights are numbers":
        ckpt["state_dict"] = {k: 1.0 for k in ckpt["state_dict"]}
    elif kind == "huge channels":
        ckpt["hyper_parameters"]["config"]["model"]["generator"]["channels"] = 10**7
    elif kind.startswith("name "):
        ckpt["hyper_parameters"]["config"]["name"] = kind.removeprefix("name ")
    torch.save(ckpt, path)
    return path


# ---- numbers and sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, words",
    [
        ("size=1000000", "size=1000000 must be at most"),
        ("scale=nan", "scale=nan must be a finite number"),
        ("scale=inf", "scale=inf must be a finite number"),
        ("scale=1000", "scale=1000.0 must be at most"),
        ("tile=99999999", "tile=99999999: tiles must be at most"),
        ("batch_size=100000", "batch_size=100000 must be at most"),
    ],
)
def test_sizes_and_numbers_are_refused_before_any_work(tmp_path, arg, words):
    photo = write_photo(tmp_path / "a.png", (128, 96), seed=1)
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    proc = cli("stylize.py", f"input={photo}", f"ckpt={ckpt}", arg, cwd=tmp_path)
    assert proc.returncode == 2 and words in one_error(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "last.ckpt"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["optimizer=adam", "lr=nan"], "lr=nan must be a finite number"),
        (["loss.alpha=inf"], "loss.alpha=inf must be a finite number"),
        (["tol=-1"], "tol=-1.0 must be ≥ 0"),
        (["style.size=10000000"], "style.size=10000000 must be at most"),
    ],
)
def test_the_optimizations_numbers_are_refused_before_any_work(tmp_path, args, words):
    photo = write_photo(tmp_path / "a.png", (64, 48), seed=1)
    proc = cli("stylize.py", f"input={photo}", *args, cwd=tmp_path)
    assert proc.returncode == 2 and words in one_error(proc)


def test_an_output_larger_than_the_pixel_limit_is_refused_per_image(tmp_path):
    photo = write_photo(tmp_path / "a.png", (64, 64), seed=1)
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    size = 20_000  # within the size bound, but a square photo at 20000 px is 400 MP
    assert size * size > MAX_PIXELS
    proc = cli("stylize.py", f"input={photo}", f"ckpt={ckpt}", f"size={size}", cwd=tmp_path)
    assert proc.returncode == 1
    line = one_error(proc)
    assert "a.png" in line and "20000x20000" in line and "choose a smaller size=" in line
    assert not list(tmp_path.glob("a_*.png"))


# ---- names that become paths -----------------------------------------------------------------


def test_names_are_one_safe_path_component():
    for bad in ("", "a/b", "../x", "..", "a\\b", "a\nb", "x" * 101, "/abs"):
        assert component_problem(bad), bad
    assert component_problem("starry_night-v2 (final)") is None
    assert safe_component("../../escaped") == "_.._escaped"
    assert safe_component("/tmp/x") == "_tmp_x" and safe_component("..") == "stylized"
    assert safe_component("a\nb") == "a_b"


@pytest.mark.parametrize("arg", ["name=a/b", "name=../../escaped", "style.name=x/y", "name="])
def test_train_refuses_a_run_name_that_is_not_one_path_component(tmp_path, arg):
    proc = cli("train.py", arg, cwd=tmp_path)
    assert proc.returncode == 2 and "becomes a folder name" in one_error(proc)
    assert not list(tmp_path.iterdir())  # Hydra made no folder


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/anywhere", "a/b", "x\ny"])
def test_a_checkpoints_name_cannot_steer_the_output_path(tmp_path, name):
    photo = write_photo(tmp_path / "in" / "a.png", (40, 30), seed=1)
    ckpt = hostile_checkpoint(tmp_path / "last.ckpt", f"name {name}")
    out = tmp_path / "trav" / "deep" / "er"
    assert stylize(StylizeConfig(input=str(photo), ckpt=str(ckpt), output=f"{out}/")) == 0
    written = [p for p in tmp_path.rglob("*.png") if p != photo]
    assert len(written) == 1 and written[0].parent == out, written
    assert "/" not in written[0].name and "\n" not in written[0].name


def test_an_export_json_name_is_sanitized_when_read(tmp_path):
    pytest.importorskip("onnxruntime")
    from gan_stylizer.commands.export import run as export
    from gan_stylizer.config.schema import ExportConfig
    from gan_stylizer.inference.exported import load_exported

    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    model, info = export(ExportConfig(ckpt=str(ckpt), output=str(tmp_path / "m.onnx")))
    info.write_text(info.read_text().replace('"name": "tiny"', '"name": "../../../etc/x"'))
    _, label = load_exported(model, torch.device("cpu"))
    assert label == "_.._.._etc_x"


# ---- weights and checks that cannot pass by accident -------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "nan weights",
        "config is text",
        "state_dict is a list",
        "weights are numbers",
        "huge channels",
    ],
)
def test_hostile_checkpoints_are_refused_at_load_by_stylize_and_export(tmp_path, kind):
    photo = write_photo(tmp_path / "a.png", (40, 30), seed=1)
    ckpt = hostile_checkpoint(tmp_path / "last.ckpt", kind)
    proc = cli("stylize.py", f"input={photo}", f"ckpt={ckpt}", cwd=tmp_path)
    assert proc.returncode == 2 and "last.ckpt" in one_error(proc), kind
    proc = cli("scripts/export.py", f"ckpt={ckpt}", cwd=tmp_path)
    assert proc.returncode == 2 and "last.ckpt" in one_error(proc), kind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "last.ckpt"]


def test_the_export_check_fails_on_nan_and_keeps_nothing(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import gan_stylizer.commands.export as command
    from gan_stylizer.config.schema import ExportConfig

    real = command.load_exported

    def broken(path, device):
        apply, label = real(path, device)

        def nan_out(content, strength=None):
            return apply(content, strength) * float("nan")

        nan_out.conditioned = apply.conditioned
        return nan_out, label

    monkeypatch.setattr(command, "load_exported", broken)
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    with pytest.raises(Exception, match="differs from PyTorch by nan; nothing kept"):
        command.run(ExportConfig(ckpt=str(ckpt), output=str(tmp_path / "m.onnx")))
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.onnx.json").exists()


# ---- truthful outcomes -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_a_full_disk_during_export_is_one_line_that_names_the_target(
    tmp_path, monkeypatch, capsys, fmt
):
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    from gan_stylizer.commands.cli import fail_cleanly
    from gan_stylizer.commands.export import run as export
    from gan_stylizer.config.schema import ExportConfig

    def full(target, suffix=".tmp"):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "create_temp", full)
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    target = tmp_path / f"m.{fmt}"
    with pytest.raises(SystemExit) as exit_info, fail_cleanly():
        export(ExportConfig(ckpt=str(ckpt), output=str(target), format=fmt))
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == f"error: {target}: No space left on device"
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_message_names_the_target(tmp_path, monkeypatch, capsys):
    from gan_stylizer.commands.cli import fail_cleanly

    def full(target, suffix=".tmp"):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "create_temp", full)
    with pytest.raises(SystemExit), fail_cleanly():
        atomic.write_bytes(tmp_path / "model.pt2", b"x")
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'model.pt2'}: No space left on device"
    )


def test_a_video_that_promises_more_frames_than_it_holds_is_reported(tmp_path, capsys):
    av = pytest.importorskip("av")
    import numpy as np

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            pixels = np.full((48, 64, 3), (i * 10, 80, 200 - i * 8), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(clip)) as container:
        positions = [p.pos for p in container.demux(container.streams.video[0]) if p.pos]
    clip.write_bytes(clip.read_bytes()[: positions[12]])  # cut at a packet: 12 of 20 remain
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    assert stylize(StylizeConfig(input=str(clip), ckpt=str(ckpt))) == 1
    err = capsys.readouterr().err
    assert "promises 20 frames but only 12 could be decoded" in err
    assert (tmp_path / "clip_tiny-gan.partial.mp4").is_file()
    assert not (tmp_path / "clip_tiny-gan.mp4").exists()


def test_train_into_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    proc = cli("train.py", "debug=fast", "hydra.run.dir=/proc/gan-stylizer/run", cwd=tmp_path)
    assert proc.returncode == 1 and "cannot make the run's folder" in one_error(proc)


# ---- work before validation ------------------------------------------------------------------


@pytest.mark.parametrize("output, words", [("x.xyz", "suffix '.xyz'"), ("result", "no suffix")])
def test_an_unknown_output_format_is_refused_before_the_optimization(tmp_path, output, words):
    photo = write_photo(tmp_path / "a.png", (64, 48), seed=1)
    proc = cli("stylize.py", f"input={photo}", f"output={output}", "steps=2000", cwd=tmp_path)
    assert proc.returncode == 2 and words in one_error(proc)
    assert "steps," not in proc.stdout  # no optimization ran


# ---- small ones ------------------------------------------------------------------------------


def test_folder_scans_take_avif_and_ico_like_single_files(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    picture = Image.open(write_photo(tmp_path / "p.png", (48, 32), seed=2)).convert("RGB")
    picture.save(folder / "a.ico")
    if ".avif" in IMAGE_EXTENSIONS:
        picture.save(folder / "b.avif")
    (folder / "c.eps").write_text("%!PS-Adobe-3.0 EPSF-3.0\n")  # never handed to Ghostscript
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    assert stylize(StylizeConfig(input=str(folder), ckpt=str(ckpt))) == 0
    done = sorted(p.name for p in (tmp_path / "photos_tiny-gan").iterdir())
    assert done == (["a.png", "b.png"] if ".avif" in IMAGE_EXTENSIONS else ["a.png"])


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_run(tmp_path, capsys):
    photo = write_photo(tmp_path / "a.png", (40, 30), seed=1)
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    dead = tmp_path / ".a_tiny-gan.png.999999999-0a1b2c3d.tmp"  # no such process
    live = tmp_path / f".b.png.{os.getpid()}-0a1b2c3d.tmp"  # this process: still writing
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    assert stylize(StylizeConfig(input=str(photo), ckpt=str(ckpt))) == 0
    assert not dead.exists() and live.exists()
    assert f"removed {dead}: a temporary file left by an interrupted run" in capsys.readouterr().out


def test_a_newline_in_a_file_name_keeps_every_report_on_one_line(tmp_path, capsys):
    photo = write_photo(tmp_path / "a\nb.png", (40, 30), seed=1)
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    assert stylize(StylizeConfig(input=str(photo), ckpt=str(ckpt))) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "->" in line]
    assert len(lines) == 1 and "a\\nb.png" in lines[0]
    assert display_path("x\x1b[31m.png") == "x\\x1b[31m.png"
    with pytest.raises(ConfigError):
        stylize(StylizeConfig(input=str(tmp_path / "missing\nfile.png"), ckpt=str(ckpt)))
