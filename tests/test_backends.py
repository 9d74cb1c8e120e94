"""backend=: ONNX Runtime runs an export of the generator that is made once and cached, matches
PyTorch, leaves tiled images to PyTorch, and says what it chose; what cannot run is refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_checkpoint, write_photo
from PIL import Image

from gan_stylizer import Stylizer
from gan_stylizer.checkpoints import load_generator
from gan_stylizer.commands.stylize import run
from gan_stylizer.config.schema import StylizeConfig
from gan_stylizer.config.validate import check_backend
from gan_stylizer.errors import ConfigError
from gan_stylizer.inference import backends
from gan_stylizer.inference.onepass import OnePass


@pytest.fixture(scope="module")
def ort() -> None:
    """The ONNX tests need the [onnx] extra: the exporter's packages and the runtime."""
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    return write_checkpoint(path, channels=8, conditioned=True)


@pytest.fixture(scope="module")
def generator(ckpt):
    return load_generator(ckpt)[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory, ort) -> Path:
    """One cache for the module: each export costs seconds."""
    return tmp_path_factory.mktemp("cache")


def test_onnxruntime_matches_torch_and_exports_once(generator, cache, monkeypatch):
    cpu = torch.device("cpu")
    engine, line = backends.build(generator, "tiny", cpu, backend="onnxruntime", cache=cache)
    assert line == "onnxruntime, fp32 on cpu (tiled images: torch, fp32)"
    digest = backends.generator_digest(generator)[:16]
    assert engine.path == cache / "onnx" / f"tiny-{digest}.onnx" and engine.path.is_file()
    reference = OnePass(generator, "cpu", torch.float32, "off")
    content = torch.rand(2, 3, 45, 61)
    for strength in (None, 0.0, 1.0):
        ort_out, torch_out = engine(content, strength), reference(content, strength)
        assert ort_out.shape == (2, 3, 45, 61)
        assert (ort_out - torch_out).abs().max() < 1e-3
    # A second engine for the same weights reuses the file: nothing is exported again.
    monkeypatch.setattr(backends, "export_generator", pytest.fail)
    assert backends.build(generator, "tiny", cpu, backend="onnxruntime", cache=cache)[0]


def test_other_weights_get_their_own_export(tmp_path, generator, cache):
    other_ckpt = write_checkpoint(tmp_path / "b.ckpt", channels=8, seed=1, conditioned=True)
    other = load_generator(other_ckpt)[0]  # the same configuration, other weights
    assert backends.generator_digest(other) != backends.generator_digest(generator)
    a = backends.cached_export(generator, "tiny", cache)
    b = backends.cached_export(other, "tiny", cache)
    assert a != b and a.is_file() and b.is_file()


def test_a_damaged_cached_export_is_made_again(generator, cache):
    path = backends.cached_export(generator, "tiny", cache)
    path.write_bytes(b"\x00not onnx")
    engine = backends.OrtPass(generator, "tiny", cache=cache)
    assert engine.path == path and path.stat().st_size > 1000
    assert torch.isfinite(engine(torch.rand(1, 3, 32, 32))).all()


def test_images_that_tile_go_through_torch(generator, cache):
    engine = backends.OrtPass(generator, "tiny", tile=64, cache=cache)
    content = torch.rand(1, 3, 80, 150)  # longer than a tile: tiled, image-wide norms
    tiled = OnePass(generator, "cpu", torch.float32, 64)(content)
    assert torch.equal(engine(content), tiled)


def test_an_unwritable_cache_is_one_line(generator, tmp_path, monkeypatch, ort):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("GAN_STYLIZER_CACHE", str(blocker))
    with pytest.raises(ConfigError, match="cannot write the ONNX cache .*GAN_STYLIZER_CACHE") as e:
        backends.build(generator, "tiny", torch.device("cpu"), backend="onnxruntime")
    assert "\n" not in str(e.value)


def test_auto_is_torch_and_says_why(generator):
    engine, line = backends.build(generator, "tiny", torch.device("cpu"))
    assert isinstance(engine, OnePass)
    assert line.startswith("torch, ") and "backend=auto" in line and "precision=auto" in line
    _, line = backends.build(generator, "tiny", torch.device("cpu"), "32", backend="torch")
    assert line == "torch, fp32 on cpu"


@pytest.mark.parametrize(
    ("backend", "device", "precision", "ckpt", "message"),
    [
        ("ort", "auto", "auto", None, "backend='ort' is not one of: auto, torch, onnxruntime"),
        ("onnxruntime", "cuda", "auto", "a.ckpt", "runs on the CPU, not device=cuda"),
        ("onnxruntime", "auto", "bf16", "a.ckpt", "runs in fp32, not precision=bf16"),
        ("torch", "auto", "auto", "model.onnx", "a .onnx export runs in onnxruntime"),
        ("onnxruntime", "auto", "auto", "model.pt2", "a .pt2 export runs in torch"),
    ],
)
def test_what_cannot_run_is_refused(backend, device, precision, ckpt, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_backend(backend, device, precision, ckpt)


def test_what_can_run_passes():
    check_backend("onnxruntime", "cuda", "auto", None)  # the optimization: no one pass
    check_backend("onnxruntime", "auto", "auto", "model.onnx")  # as it runs anyway
    check_backend("torch", "cuda", "bf16", "model.pt2")


def test_stylize_and_the_api_take_the_backend(
    tmp_path, ckpt, generator, cache, capsys, monkeypatch
):
    monkeypatch.setenv("GAN_STYLIZER_CACHE", str(cache))
    photo = write_photo(tmp_path / "in" / "a.png", (61, 45), seed=1)
    out = tmp_path / "out"
    cfg = StylizeConfig(
        input=str(photo.parent), ckpt=str(ckpt), output=str(out), backend="onnxruntime"
    )
    assert run(cfg) == 0
    assert "tiny-gan: onnxruntime, fp32 on cpu" in capsys.readouterr().out
    result = np.asarray(Image.open(out / "a.png"), dtype=np.float32) / 255
    content = torch.from_numpy(np.asarray(Image.open(photo), dtype=np.float32) / 255)
    reference = OnePass(generator, "cpu", torch.float32, "off")(content.permute(2, 0, 1)[None])
    assert np.abs(result - reference[0].permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6
    stylizer = Stylizer.load(ckpt, backend="onnxruntime")
    assert stylizer(Image.open(photo), strength=0.5).size == (61, 45)
    with pytest.raises(ConfigError, match="precision=fp16"):
        Stylizer.load(ckpt, precision="fp16", backend="onnxruntime")
