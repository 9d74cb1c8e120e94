"""The corpus of bad and awkward inputs (tests/corpus.py) through stylize.py and train.py: each
file is converted correctly or refused with one line naming it; no traceback, no crash of the
run, no partial output. docs/reliability.md is the readable list of the same cases."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_overrides, write_checkpoint, write_painting, write_photo
from corpus import write_corpus
from PIL import Image
from test_training import tiny_config

from gan_stylizer.commands.stylize import run as stylize
from gan_stylizer.config.schema import StylizeConfig
from gan_stylizer.errors import ImageError, StyleError, display_path
from gan_stylizer.styles import load_style_image
from gan_stylizer.training.run import run as train

REPO = Path(__file__).resolve().parents[1]
# A strict UTF-8 stdout, as under LANG=en_US.UTF-8: a non-UTF-8 file name must not crash it.
STRICT_ENV = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "HYDRA_FULL_ERROR": "0"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "inputs"
    return root, write_corpus(root)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt", channels=4)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_the_corpus_reads_as_documented(corpus):
    from gan_stylizer.io.images import read_rgb

    for case in corpus[1]:
        if case.ok:
            assert read_rgb(case.path).size == case.size, case.name
        else:
            with pytest.raises(ImageError) as info:
                read_rgb(case.path)
            message = str(info.value)
            assert case.error in message and "\n" not in message, (case.name, message)
            assert message.startswith(display_path(case.path)), case.name


def test_stylize_cli_over_the_corpus_folder(corpus, ckpt, tmp_path):
    root, cases = corpus
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "stylize.py"),
            f"ckpt={ckpt}",
            f"input={root}",
            f"output={out}",
        ],
        capture_output=True,
        env=STRICT_ENV,
        timeout=300,
    )
    stdout = proc.stdout.decode("utf-8")  # strict: what was printed is valid UTF-8
    stderr = proc.stderr.decode("utf-8")
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    # A folder named like an image is a folder: searched, not an input.
    refused = [c for c in cases if not c.ok and c.name != "folder named like an image"]
    errors = error_lines(stderr)
    assert len(errors) == len(refused), errors
    for case in refused:
        (line,) = [e for e in errors if display_path(case.path) in e]
        assert case.error in line, line
    converted = [c for c in cases if c.ok]
    for case in converted:
        with Image.open(out / Path(case.path.name).with_suffix(".png")) as img:
            assert img.size == case.size, case.name
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(converted)  # no partial or temporary files
    assert f"done {len(converted)}, skipped 0, failed {len(refused)}" in stdout


def test_each_case_alone_through_stylize(corpus, ckpt, tmp_path, capsys):
    root, cases = corpus
    for i, case in enumerate(cases):
        out = tmp_path / f"out_{i}.png"
        if case.name == "folder named like an image":
            from gan_stylizer.errors import ConfigError

            with pytest.raises(ConfigError, match="holds no images"):
                stylize(StylizeConfig(input=str(case.path), ckpt=str(ckpt), output=str(out)))
            continue
        failed = stylize(StylizeConfig(input=str(case.path), ckpt=str(ckpt), output=str(out)))
        printed = capsys.readouterr()
        if case.ok:
            assert failed == 0 and Image.open(out).size == case.size, case.name
        else:
            (line,) = error_lines(printed.err)
            assert failed == 1 and case.error in line and not out.exists(), (case.name, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"out_{i}.png" for i, c in enumerate(cases) if c.ok
    )


def test_an_output_name_too_long_for_the_file_system_is_one_line(corpus, tmp_path, capsys):
    root, cases = corpus
    (long_name,) = [c for c in cases if c.name == "250-byte file name"]
    ckpt = write_checkpoint(tmp_path / "last.ckpt", channels=4, name="a_long_style_label")
    # Default output <stem>_<label>.png beside the input: 265 bytes, over NAME_MAX (255).
    assert stylize(StylizeConfig(input=str(long_name.path), ckpt=str(ckpt))) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "File name too long" in line and "output=" in line


def test_training_on_the_corpus_skips_bad_files_with_one_line_each(corpus, tmp_path, caplog):
    root, cases = corpus
    painting = write_painting(tmp_path / "painting.png")
    # batch 4 and 12 steps: every one of the 24 files is drawn at least once (seeded order).
    cfg = tiny_config(root, painting, **{"trainer.steps": 12, "data.batch_size": 4})
    with caplog.at_level(logging.WARNING, logger="gan_stylizer.training.data"):
        last = train(cfg, tmp_path / "run")
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["gan_stylizer"]["g_step"] == 12 and ckpt["gan_stylizer"]["nonfinite_total"] == 0
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    refused = [c for c in cases if not c.ok and c.name != "folder named like an image"]
    for case in refused:
        lines = [m for m in skipped if display_path(case.path) in m]
        assert len(lines) == 1 and case.error in lines[0], (case.name, lines)
    assert len(skipped) == len(refused)


@pytest.mark.parametrize("size", [(1, 1), (3, 1000), (1000, 3)])
def test_extreme_shapes_train_as_photos_and_as_paintings(tmp_path, size):
    odd = tmp_path / "odd"
    odd.mkdir()
    for i in range(2):
        Image.new("RGB", size, (40 + 100 * i, 90, 200)).save(odd / f"{i}.png")
    painting = odd / "0.png"
    last = train(tiny_config(odd, painting, **{"trainer.steps": 2}), tmp_path / "run")
    assert torch.load(last, weights_only=True)["gan_stylizer"]["nonfinite_total"] == 0


def test_each_case_as_the_style_image(corpus, tmp_path):
    from gan_stylizer.config.schema import StyleConfig

    root, cases = corpus
    for case in cases:
        style = StyleConfig(name="test", path=str(case.path), size=64)
        if case.ok:
            image = load_style_image(style, tmp_path)
            assert image.shape[:2] == (1, 3) and max(image.shape[-2:]) == 64, case.name
            continue
        with pytest.raises((ImageError, StyleError)) as info:
            load_style_image(style, tmp_path)
        assert "\n" not in str(info.value) and display_path(case.path) in str(info.value)


def test_train_cli_refuses_a_bad_painting_and_a_folder_of_broken_photos(corpus, tmp_path):
    root, cases = corpus
    photos = tmp_path / "photos"
    for i in range(2):
        write_photo(photos / f"p{i}.png", (64, 48), seed=i)
    (truncated,) = [c for c in cases if c.name == "truncated JPEG"]
    broken = tmp_path / "broken"
    broken.mkdir()
    for case in cases:
        if not case.ok and case.path.is_file() and not case.path.is_symlink():
            (broken / case.path.name).write_bytes(case.path.read_bytes())
    painting = write_painting(tmp_path / "painting.png")
    for i, (data_root, style, expect) in enumerate(
        (
            (photos, truncated.path, f"{truncated.path}: corrupt or truncated image"),
            (broken, painting, "photos can be read, fewer than data.batch_size"),
        )
    ):
        run_dir = tmp_path / f"run{i}"
        overrides = [*tiny_train_overrides(data_root, style), f"hydra.run.dir={run_dir}"]
        proc = subprocess.run(
            [sys.executable, str(REPO / "train.py"), *overrides],
            capture_output=True,
            text=True,
            env=STRICT_ENV,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        (line,) = error_lines(proc.stderr)
        assert expect in line, line
        assert not (run_dir / "checkpoints").exists()


class _Payload:
    """Unpickling this runs Path.touch(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_pickles_code_is_refused_unrun_by_both_clis(
    tmp_path, photo_dir, painting
):
    marker = tmp_path / "payload_ran"
    real = torch.load(write_checkpoint(tmp_path / "real.ckpt", channels=4), weights_only=True)
    real["hyper_parameters"]["hook"] = _Payload(marker)  # a plausible checkpoint, plus code
    hostile = tmp_path / "run" / "checkpoints" / "last.ckpt"
    hostile.parent.mkdir(parents=True)
    torch.save(real, hostile)
    photo = write_photo(tmp_path / "photo.png", (32, 24), seed=0)
    commands = {
        "stylize": [str(REPO / "stylize.py"), f"ckpt={hostile}", f"input={photo}"],
        # The run folder's own last.ckpt, which ckpt_path=auto would resume.
        "train": [
            str(REPO / "train.py"),
            *tiny_train_overrides(photo_dir, painting),
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
    }
    for name, command in commands.items():
        proc = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, env=STRICT_ENV, timeout=300
        )
        assert proc.returncode == 2, (name, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, name
        (line,) = error_lines(proc.stderr)
        assert str(hostile) in line and "refused" in line, (name, line)
        assert not marker.exists(), name
    assert not list(tmp_path.glob("photo_*.png"))


@pytest.mark.parametrize("damage", ["truncated", "other model", "wrong shapes", "not a zip"])
def test_damaged_or_foreign_checkpoints_get_one_line_from_stylize(tmp_path, damage):
    from gan_stylizer.checkpoints import load_generator
    from gan_stylizer.errors import CheckpointError

    path = write_checkpoint(tmp_path / "last.ckpt", channels=4)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
    elif damage == "other model":
        torch.save({"state_dict": {"encoder.weight": torch.zeros(3)}, "epoch": 3}, path)
    elif damage == "wrong shapes":
        ckpt = torch.load(path, weights_only=True)
        ckpt["hyper_parameters"]["config"]["model"]["generator"]["channels"] = 6
        torch.save(ckpt, path)
    else:
        path.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message


@pytest.mark.parametrize(
    "override,words",
    [
        ("loss.alpah=1", "loss.alpah"),
        ("loss.alpha=abc", "loss.alpha"),
        ("style=nonexistent", "starry_night"),  # the known styles are listed
    ],
)
def test_train_cli_names_a_bad_override_without_a_traceback(tmp_path, override, words):
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), override, f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        env=STRICT_ENV,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert words in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_path_longer_than_the_file_system_allows_is_one_line(tmp_path, ckpt):
    too_long = tmp_path / ("x" * 300 + ".png")
    photos = tmp_path / "in"
    write_photo(photos / "a.png", (20, 16), seed=0)
    for command in (
        [str(REPO / "stylize.py"), f"ckpt={ckpt}", f"input={too_long}"],
        [str(REPO / "stylize.py"), f"ckpt={ckpt}", f"input={photos}", f"output={too_long}_dir"],
    ):
        proc = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, env=STRICT_ENV, timeout=120
        )
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        (line,) = error_lines(proc.stderr)
        assert "too long" in line.lower(), line
