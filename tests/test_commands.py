"""The commands as a user meets them: --help per command, one line and exit status 2 for a
misspelt key (with the closest keys) and for an unquoted reserved file name, the config
reference current with the schema, the installed `gan-stylizer` commands, the Python API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import write_photo
from PIL import Image

from gan_stylizer.config.reference import markdown

REPO = Path(__file__).resolve().parents[1]
ENTRY = {
    "train": REPO / "train.py",
    "stylize": REPO / "stylize.py",
    "export": REPO / "scripts" / "export.py",
    "evaluate": REPO / "scripts" / "evaluate.py",
    "serve": REPO / "app.py",
}


def run(*args: str, cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


@pytest.mark.parametrize("command", list(ENTRY))
def test_help_starts_with_a_usage_line_and_lists_only_the_commands_keys(command):
    done = run(ENTRY[command], "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
    keys = re.findall(r"^  (\S+) ", done.stdout, re.M)
    if command == "train":
        assert {"loss.adv", "trainer.steps", "model.generator.conditioned"} <= set(keys)
    else:  # no training groups or training-only keys in the other commands' help
        assert not {"loss.adv", "loss.r1", "trainer.steps", "debug", "experiment"} & set(keys)
    if command == "stylize":
        assert {"strength", "tile", "loss.alpha"} <= set(keys)


def test_help_is_hydras_own_template_fed_from_the_schema():
    from gan_stylizer.commands.overrides import help_text
    from gan_stylizer.commands.train import GROUPS
    from gan_stylizer.config.schema import TrainConfig

    done = run(ENTRY["train"], "--help")
    expected = help_text("", "", TrainConfig, GROUPS).partition("keys (key=value")[2]
    assert expected and expected in done.stdout  # printed by Hydra from hydra.help.template
    assert "Powered by Hydra" not in done.stdout


def test_progress_lines_give_the_budget_the_rate_and_an_eta():
    from gan_stylizer.progress import clock, progress_line

    assert [clock(s) for s in (0, 42, 3725)] == ["0:00", "0:42", "1:02:05"]
    line = progress_line("train", 120, 1000, 3.0, {"g_style": "1.2e+05"})
    assert line == "train: step 120/1000 (12%), 3.00 s/step, ETA 44:00, g_style 1.2e+05"
    assert progress_line("train", 0, 10, None, {}) == "train: step 0/10 (0%)"


@pytest.mark.parametrize(
    "command, arg, suggestion",
    [
        ("stylize", "strenght=0.5", "strength"),
        ("train", "loss.alpah=3", "loss.alpha"),
        ("train", "trainer.step=3", "trainer.steps"),
        ("export", "formt=onnx", "format"),
        ("evaluate", "limt=3", "limit"),
        ("serve", "prot=8000", "port"),
        ("stylize", "loss.adv=1", None),  # a training key: not the optimization's
        ("train", "loss.strength_margin=0.1", None),  # a retired option
    ],
)
def test_a_misspelt_key_exits_2_with_one_line_that_names_it(tmp_path, command, arg, suggestion):
    first = {"train": "seed=0", "export": "ckpt=x.ckpt", "serve": "port=1"}.get(
        command, "input=x.jpg"
    )
    done = run(ENTRY[command], first, arg, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    key = arg.partition("=")[0]
    assert len(lines) == 1 and f"unknown key {key!r}" in lines[0], done.stderr
    if suggestion:
        assert f"did you mean {suggestion}" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written, no run folder


def test_an_unknown_group_option_lists_the_options(tmp_path):
    done = run(ENTRY["train"], "style=starry_nite", cwd=tmp_path)
    assert done.returncode == 2
    assert "style=starry_nite: no such style" in done.stderr and "starry_night" in done.stderr


@pytest.mark.parametrize("name", ["a=b.png", "x,y.png", "it's.png", "日本語.png"])
def test_file_names_that_hydra_reserves_get_the_quoting_and_work_quoted(tmp_path, name):
    photo = write_photo(tmp_path / name, (40, 30), seed=0)
    plain = run(ENTRY["stylize"], f"input={photo}", "ckpt=missing.ckpt", cwd=tmp_path)
    assert plain.returncode == 2
    assert "quote the value" in plain.stderr and len(plain.stderr.strip().splitlines()) == 1
    escaped = str(photo).replace("\\", "\\\\").replace("'", "\\'")
    quoted = run(ENTRY["stylize"], f"input='{escaped}'", "ckpt=missing.ckpt", cwd=tmp_path)
    # Hydra read the name: the error is about the checkpoint, not the command line.
    assert quoted.returncode == 2 and "missing.ckpt" in quoted.stderr, quoted.stderr


def test_the_config_reference_is_current():
    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert text == markdown(), "regenerate it: python scripts/config_reference.py"
    for retired in ("adv_balance", "perceptual_balance", "strength_margin", "lr_strength_mult"):
        assert retired not in text


def test_the_readmes_python_api_example_runs(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert "Stylizer.load(" in code
    write_photo(tmp_path / "photo.jpg", (80, 60), seed=2)
    done = run("-c", code, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = [p for p in tmp_path.glob("*.png")]
    assert outputs and Image.open(outputs[0]).size == (80, 60)


def test_the_api_takes_pil_numpy_and_tensors_from_several_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch
    from conftest import write_checkpoint

    from gan_stylizer import Stylizer

    stylizer = Stylizer.load(write_checkpoint(tmp_path / "g.ckpt", conditioned=True))
    photo = Image.open(write_photo(tmp_path / "p.png", (50, 40), seed=1))
    inputs = [photo, np.asarray(photo), np.asarray(photo) / 255.0, torch.rand(3, 40, 50)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda x: stylizer(x, strength=0.3), inputs * 2))
    assert all(o.size == (50, 40) for o in outs)
    assert np.array_equal(np.asarray(outs[0]), np.asarray(outs[1]))  # PIL and uint8 alike
    with pytest.raises(ValueError, match="expected a PIL image"):
        stylizer("photo.jpg")
    with pytest.raises(Exception, match=r"strength=1.5: 1.5 is outside \[0, 1\]"):
        stylizer(photo, strength=1.5)


@pytest.mark.slow
def test_the_installed_commands_work_after_a_plain_pip_install(tmp_path):
    """`pip install .` (not editable) into a new venv, whose other dependencies come from this
    environment: configs and zoo weights are installed with the package."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    build = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(REPO), str(build)], check=True, timeout=120)
    for path in ("src", "pyproject.toml", "README.md"):  # the working tree as it is now
        subprocess.run(["cp", "-r", str(REPO / path), str(build)], check=True)
    # What `pip install .` does: build the wheel (with this environment's setuptools; the
    # new venv's bundled one is older), then install it.
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(build)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("gan_stylizer-*.whl")
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", str(wheel)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cli = venv / "bin" / "gan-stylizer"
    env = {**os.environ, "PYTHONPATH": ""}
    work = tmp_path / "elsewhere"
    work.mkdir()
    photo = write_photo(work / "photo.png", (48, 40), seed=3)
    for args in (["--help"], ["stylize", "--help"], ["models"]):
        out = subprocess.run(
            [cli, *args], capture_output=True, text=True, cwd=work, env=env, timeout=120
        )
        assert out.returncode == 0, (args, out.stderr[-2000:])
    name = out.stdout.split()[0]
    out = subprocess.run(
        [cli, "stylize", f"ckpt={name}", f"input={photo}"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert Image.open(next(work.glob("photo_*.png"))).size == (48, 40)
    typo = subprocess.run(
        [cli, "stylize", "strenght=1"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=120,
    )
    assert typo.returncode == 2 and "did you mean strength" in typo.stderr


def test_outputs_say_what_made_them_and_a_skip_names_it(tmp_path):
    from conftest import write_checkpoint, write_painting

    photo = write_photo(tmp_path / "photo.png", (40, 32), seed=4)
    painting = write_painting(tmp_path / "painting.png")
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt")
    gan = run(ENTRY["stylize"], f"ckpt={ckpt}", f"input={photo}", cwd=tmp_path)
    optim = run(
        ENTRY["stylize"],
        f"input={photo}",
        f"style.path={painting}",
        "style.name=stripes",
        "steps=2",
        "size=32",
        "loss.vgg.weights=none",
        cwd=tmp_path,
    )
    assert gan.returncode == 0 and optim.returncode == 0, gan.stderr + optim.stderr
    assert (tmp_path / "photo_tiny-gan.png").is_file()
    assert (tmp_path / "photo_stripes-optim.png").is_file()
    again = run(ENTRY["stylize"], f"ckpt={ckpt}", f"input={photo}", cwd=tmp_path)
    assert (
        "photo_tiny-gan.png exists (made by tiny-gan; overwrite=true replaces it)" in again.stdout
    )


def test_help_into_a_pipe_closed_early_is_no_error():
    done = subprocess.run(
        f"'{sys.executable}' '{ENTRY['stylize']}' --help | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.startswith("usage: ") and "Traceback" not in done.stderr, done.stderr
