"""The model zoo: every installed model loads, matches its manifest and its sha256, and
stylizes; stylize.py, export and the Python API take zoo names; unknown names list the zoo."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_photo
from PIL import Image

from gan_stylizer import zoo
from gan_stylizer.errors import CheckpointError
from gan_stylizer.models.generator import Generator
from gan_stylizer.styles import REGISTRY

REPO = Path(__file__).resolve().parents[1]
NAMES = zoo.names()


def test_every_painting_of_the_registry_has_a_zoo_model():
    assert set(NAMES) == set(REGISTRY), "train and build the missing ones: scripts/zoo.py build"


@pytest.mark.parametrize("name", NAMES)
def test_a_zoo_model_loads_checks_its_manifest_and_stylizes(name):
    model = zoo.describe(name)
    data = model.weights.read_bytes()
    assert len(data) <= 4_000_000  # fp16, at most 4 MB
    manifest = model.manifest
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["painting"]["sha256"] == REGISTRY[name].sha256
    assert manifest["generator"]["conditioned"] is True  # every zoo model is a strength dial
    assert manifest["steps"] > 0 and manifest["commit"] and manifest["hardware"]
    for key in ("style", "content", "swd", "ssim", "edges"):
        assert manifest["scores"][key] > 0
    generator, _ = zoo.load(name)
    photo = torch.rand(1, 3, 40, 56)
    outs = [generator(photo, s) for s in (0.0, 1.0)]
    assert all(o.shape == photo.shape and torch.isfinite(o).all() for o in outs)
    assert 0 <= outs[0].min() and outs[0].max() <= 1


def fake_zoo(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "pretrained"
    torch.manual_seed(0)
    manifest = {
        "painting": {"name": "x", "title": "X", "sha256": "0" * 64},
        "generator": {"channels": 4, "n_residual": 1, "norm": "instance", "conditioned": True},
        "recipe": {},
        "steps": 3,
        "hardware": "test",
        "commit": "test",
    }
    zoo.save(Generator(4, 1, conditioned=True), folder, "tiny", manifest)
    monkeypatch.setattr(zoo, "_folder", lambda: folder)
    return folder


def test_a_damaged_or_replaced_file_is_refused_by_its_sha256(tmp_path, monkeypatch):
    folder = fake_zoo(tmp_path, monkeypatch)
    generator, manifest = zoo.load("tiny")
    assert manifest["name"] == "tiny" and generator.conditioned
    weights = folder / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tiny.safetensors: sha256 .* is not the manifest"):
        zoo.load("tiny")


def test_an_unknown_name_lists_the_zoo(tmp_path, monkeypatch):
    fake_zoo(tmp_path, monkeypatch)
    with pytest.raises(
        CheckpointError, match=r"ckpt=nope: no such file, and not a zoo model \(tiny\)"
    ):
        zoo.load_any("nope")
    manifest = json.loads((tmp_path / "pretrained" / "tiny.json").read_text())
    del manifest["commit"]
    (tmp_path / "pretrained" / "tiny.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="zoo manifest lacks commit"):
        zoo.load("tiny")


@pytest.mark.skipif(not NAMES, reason="no zoo model installed")
def test_stylize_takes_a_zoo_name_and_refuses_an_unknown_one(tmp_path):
    photo = write_photo(tmp_path / "photo.png", (64, 48), seed=1)
    name = NAMES[0]
    cmd = [sys.executable, str(REPO / "stylize.py"), f"ckpt={name}", f"input={photo}"]
    done = subprocess.run([*cmd, "strength=0,1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outs = sorted(tmp_path.glob("photo_*.png"))
    assert len(outs) == 2 and all(Image.open(p).size == (64, 48) for p in outs)
    bad = subprocess.run(
        [sys.executable, str(REPO / "stylize.py"), "ckpt=nope", f"input={photo}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a zoo model" in lines[0] and name in lines[0]


def test_the_models_command_lists_the_zoo():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "models.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in NAMES:
        assert name in done.stdout


def test_the_zoo_page_says_which_model_has_which_recipe_and_hardware():
    spec = importlib.util.spec_from_file_location("zoo_script", REPO / "scripts" / "zoo.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    recipes = {
        "a": {"style.name": "a", "trainer.steps": 1800, "model.generator.conditioned": True},
        "b": {"style.name": "b", "trainer.steps": 1800, "model.generator.conditioned": True},
        "c": {
            "style.name": "c",
            "trainer.steps": 12000,
            "trainer.lr_decay_steps": 3000,
            "model.generator.conditioned": True,
        },
    }
    lines = script.recipe_lines(recipes)
    assert "model.generator.conditioned=true" in lines[0] and "trainer.steps" not in lines[0]
    assert "- `trainer.lr_decay_steps` differs: a, b: (default); c: 3000." in lines
    assert "- `trainer.steps` differs: a, b: 1800; c: 12000." in lines
    assert script.shared_lines("Trained on", {"a": "X", "b": "X"})[0] == "Trained on: X."
    split = script.shared_lines("Trained on", {"a": "X", "b": "Y", "c": None})
    assert split[1:4] == ["- a: X.", "- b: Y.", "- c: see the manifest."]
