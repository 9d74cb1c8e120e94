"""stylize.py: input collection and output planning (files, folders, globs; never an input),
and one pass through a checkpoint: bad files, batches, colour, size, tiling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_checkpoint, write_photo
from PIL import Image
from tqdm import tqdm

from gan_stylizer.commands.stylize import run
from gan_stylizer.config.schema import StylizeConfig
from gan_stylizer.errors import ConfigError
from gan_stylizer.inference.outputs import plan_outputs
from gan_stylizer.io.inputs import collect_inputs

REPO = Path(__file__).resolve().parents[1]


def test_single_file_default_output_is_beside_it(tmp_path):
    photo = write_photo(tmp_path / "cat.jpg", (8, 8), 0)
    files, root = collect_inputs(str(photo))
    assert files == [photo] and root is None
    assert plan_outputs(files, root, None, "starry") == [(photo, tmp_path / "cat_starry.png")]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert plan_outputs(files, root, str(out_dir), "s")[0][1] == out_dir / "cat_s.png"
    assert plan_outputs(files, root, str(tmp_path / "x.jpg"), "s")[0][1] == tmp_path / "x.jpg"


def test_folder_is_mirrored_recursively(tmp_path):
    a = write_photo(tmp_path / "in" / "a.jpg", (8, 8), 0)
    b = write_photo(tmp_path / "in" / "deep" / "b.png", (8, 8), 1)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    files, root = collect_inputs(str(tmp_path / "in"))
    assert files == [a, b]
    pairs = plan_outputs(files, root, None, "s")
    assert [dst for _, dst in pairs] == [
        tmp_path / "in_s" / "a.png",
        tmp_path / "in_s" / "deep" / "b.png",
    ]


def test_same_stem_in_one_folder_gets_distinct_outputs(tmp_path):
    write_photo(tmp_path / "in" / "a.jpg", (8, 8), 0)
    write_photo(tmp_path / "in" / "a.png", (8, 8), 1)
    pairs = plan_outputs(*collect_inputs(str(tmp_path / "in")), str(tmp_path / "o"), "s")
    assert len({dst for _, dst in pairs}) == 2


def test_glob_input(tmp_path):
    for i in range(3):
        write_photo(tmp_path / f"p{i}.png", (8, 8), i)
    files, root = collect_inputs(str(tmp_path / "p*.png"))
    assert len(files) == 3 and root is None
    with pytest.raises(ConfigError, match="folder, not a file"):
        plan_outputs(files, root, str(tmp_path / "one.png"), "s")
    with pytest.raises(ConfigError, match="matches no files"):
        collect_inputs(str(tmp_path / "q*.png"))


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        collect_inputs(str(tmp_path / "nope.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        collect_inputs(str(tmp_path / "empty"))


# ----------------------------------------------------------------------------------------------
# One pass through a checkpoint, in process: folders, globs, bad files, batches, colour, size


@pytest.fixture
def ckpt(tmp_path):
    return write_checkpoint(tmp_path / "run" / "last.ckpt", channels=8, name="tiny")


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64) / 255


def no_temp_files(root) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def test_folder_with_broken_files_stylizes_the_rest(tmp_path, ckpt, capsys, monkeypatch):
    import gan_stylizer.io.images as images

    photos = tmp_path / "in"
    write_photo(photos / "a.png", (40, 30), 0)
    write_photo(photos / "deep" / "b.jpg", (30, 40), 1)
    (photos / "notes.png").write_text("not an image")  # a non-image with an image's name
    data = (photos / "a.png").read_bytes()
    (photos / "cut.png").write_bytes(data[: len(data) // 2])  # truncated
    Image.new("L", (1200, 1000), 9).save(photos / "bomb.png")  # a few kB, 1.2 MP
    monkeypatch.setattr(images, "MAX_PIXELS", 1_000_000)
    out = tmp_path / "out"
    lines = []
    real_write = tqdm.write
    monkeypatch.setattr(tqdm, "write", lambda s, file=None: lines.append(s) or real_write(s, file))

    failed = run(StylizeConfig(input=str(photos), ckpt=str(ckpt), output=str(out)))

    err = capsys.readouterr()
    errors = [line for line in err.err.splitlines() if line.startswith("error:")]
    assert failed == 3 and len(errors) == 3
    for name, reason in (
        ("notes.png", "not an image"),
        ("cut.png", "truncated"),
        ("bomb.png", "decompression bomb"),
    ):
        assert sum(name in line and reason in line for line in errors) == 1
    assert "done 2, skipped 0, failed 3" in err.out
    # One line per input, in input order (the sorted paths), whether it failed or not.
    names = ["a.png", "bomb.png", "cut.png", "b.jpg", "notes.png"]
    assert [next(n for n in names if n in line) for line in lines] == names
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a.png",
        "deep/b.png",
    ]
    assert no_temp_files(out)


def test_a_failed_folder_exits_nonzero(tmp_path, ckpt):
    photos = tmp_path / "in"
    write_photo(photos / "a.png", (24, 20), 0)
    (photos / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    proc = subprocess.run(
        [sys.executable, str(REPO / "stylize.py"), f"ckpt={ckpt}", f"input={photos}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / "in_tiny-gan" / "a.png").is_file()
    assert not (tmp_path / "in_tiny-gan" / "b.png").exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "b.jpg" in errors[0] and "Traceback" not in proc.stderr


def test_batches_give_the_same_images_as_one_by_one(tmp_path, ckpt, monkeypatch):
    from gan_stylizer.inference.onepass import OnePass

    calls = []
    real_call = OnePass.__call__
    monkeypatch.setattr(
        OnePass, "__call__", lambda self, x: calls.append(x.shape[0]) or real_call(self, x)
    )
    photos = tmp_path / "in"
    for i in range(6):  # a run of three, one of another size, then two
        write_photo(photos / f"p{i}.png", (36, 28) if i != 3 else (28, 36), i)
    for batch_size in (1, 4):
        calls.clear()
        cfg = StylizeConfig(
            input=str(photos),
            ckpt=str(ckpt),
            output=str(tmp_path / f"b{batch_size}"),
            batch_size=batch_size,
            precision="32",
        )
        assert run(cfg) == 0
        assert calls == ([1] * 6 if batch_size == 1 else [3, 1, 2])
    for i in range(6):
        one, batched = (read(tmp_path / f"b{b}" / f"p{i}.png") for b in (1, 4))
        assert np.abs(one - batched).max() <= 1 / 255


def test_glob_input_with_a_checkpoint(tmp_path, ckpt, capsys):
    for i in range(3):
        write_photo(tmp_path / f"p{i}.png", (20, 16), i)
    write_photo(tmp_path / "other.png", (20, 16), 9)
    assert (
        run(
            StylizeConfig(
                input=str(tmp_path / "p*.png"), ckpt=str(ckpt), output=str(tmp_path / "o")
            )
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert "done 3, skipped 0, failed 0" in capsys.readouterr().out
    # Existing outputs are kept; a second run skips them all.
    assert (
        run(
            StylizeConfig(
                input=str(tmp_path / "p*.png"), ckpt=str(ckpt), output=str(tmp_path / "o")
            )
        )
        == 0
    )
    assert "done 0, skipped 3, failed 0" in capsys.readouterr().out


def test_preserve_color_keeps_the_photo_colours(tmp_path, ckpt):
    from gan_stylizer.color import rgb_to_yiq
    from gan_stylizer.io.images import load_image

    photo = write_photo(tmp_path / "p.png", (48, 40), 3)
    outputs = {}
    for keep in (False, True):
        outputs[keep] = tmp_path / f"out_{keep}.png"
        cfg = StylizeConfig(
            input=str(photo), ckpt=str(ckpt), output=str(outputs[keep]), preserve_color=keep
        )
        assert run(cfg) == 0
    content = rgb_to_yiq(load_image(photo))
    kept_rgb = load_image(outputs[True])
    plain, kept = rgb_to_yiq(load_image(outputs[False])), rgb_to_yiq(kept_rgb)
    # I and Q are the photo's, up to 8-bit rounding, where the result was not clipped to [0, 1].
    inside = ((kept_rgb > 1 / 255) & (kept_rgb < 254 / 255)).all(dim=1, keepdim=True)
    assert inside.float().mean() > 0.5
    chroma_error = (kept[:, 1:] - content[:, 1:]).abs().masked_select(inside).mean().item()
    assert chroma_error < 0.004
    assert (plain[:, 1:] - content[:, 1:]).abs().mean().item() > 0.05  # the style's colours
    assert (kept[:, :1] - plain[:, :1]).abs().mean().item() < 0.02  # luminance: the style's


def test_scale_and_size(tmp_path, ckpt):
    photo = write_photo(tmp_path / "p.png", (60, 40), 0)
    assert (
        run(
            StylizeConfig(
                input=str(photo), ckpt=str(ckpt), output=str(tmp_path / "half.png"), scale=0.5
            )
        )
        == 0
    )
    assert Image.open(tmp_path / "half.png").size == (30, 20)
    assert (
        run(
            StylizeConfig(input=str(photo), ckpt=str(ckpt), output=str(tmp_path / "s.png"), size=30)
        )
        == 0
    )
    assert Image.open(tmp_path / "s.png").size == (30, 20)
    with pytest.raises(ConfigError, match="size= and scale="):
        run(StylizeConfig(input=str(photo), ckpt=str(ckpt), size=30, scale=0.5))
    for key, value in (("tile", "12"), ("precision", "fp8"), ("batch_size", 0)):
        with pytest.raises(ConfigError, match=key):
            run(StylizeConfig(input=str(photo), ckpt=str(ckpt), **{key: value}))


def test_tiled_run_writes_the_untiled_image(tmp_path, ckpt):
    photo = write_photo(tmp_path / "p.png", (150, 110), 4)
    for tile in ("off", "64"):
        cfg = StylizeConfig(
            input=str(photo), ckpt=str(ckpt), output=str(tmp_path / f"{tile}.png"), tile=tile
        )
        assert run(cfg) == 0
    assert np.abs(read(tmp_path / "off.png") - read(tmp_path / "64.png")).mean() <= 2 / 255


def test_wrong_or_corrupt_checkpoint_is_a_clear_error(tmp_path, ckpt):
    from gan_stylizer.errors import CheckpointError

    photo = write_photo(tmp_path / "p.png", (20, 20), 0)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="cut.ckpt: not a readable checkpoint"):
        run(StylizeConfig(input=str(photo), ckpt=str(cut)))
    other = tmp_path / "other.ckpt"
    torch.save(
        {
            "hyper_parameters": {
                "config": {
                    "model": {"generator": {"channels": 16, "n_residual": 1, "norm": "instance"}}
                }
            },
            "state_dict": torch.load(ckpt, weights_only=True)["state_dict"],
        },
        other,
    )
    with pytest.raises(CheckpointError, match="weights do not fit"):
        run(StylizeConfig(input=str(photo), ckpt=str(other)))
