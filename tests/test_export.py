"""Export: ONNX (run with onnxruntime) and torch.export programs take any height and width,
match PyTorch, state their pixel convention, and stylize.py runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_checkpoint, write_photo
from PIL import Image

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.commands.export import run as export_run
from gan_stylizer.commands.stylize import run
from gan_stylizer.config.schema import ExportConfig, StylizeConfig
from gan_stylizer.errors import CheckpointError, ConfigError
from gan_stylizer.inference.export import export_generator
from gan_stylizer.inference.exported import load_exported

REPO = Path(__file__).resolve().parents[1]
ODD_SIZES = [(257, 391), (64, 1000), (16, 17)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt", channels=8)


@pytest.fixture(scope="module")
def generator(ckpt):
    return load_generator(ckpt)[0]


@pytest.fixture(scope="module")
def onnx_model(ckpt, generator) -> Path:
    pytest.importorskip("onnxruntime")
    path, _ = export_generator(generator, "onnx", ckpt.with_name("model.onnx"), "tiny", ckpt)
    return path


@pytest.fixture(scope="module")
def pt2_model(ckpt, generator) -> Path:
    path, _ = export_generator(generator, "pt2", ckpt.with_name("model.pt2"), "tiny", ckpt)
    return path


def expected(generator, content: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return generator(content)


@pytest.mark.parametrize("size", ODD_SIZES)
def test_onnx_model_matches_pytorch_at_any_size(onnx_model, generator, size):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    content = torch.rand(2, 3, *size)
    (out,) = session.run(None, {"content": content.numpy()})
    assert out.shape == (2, 3, *size)
    assert np.abs(out - expected(generator, content).numpy()).max() <= 1e-3


@pytest.mark.parametrize("size", ODD_SIZES)
def test_pt2_program_matches_pytorch_at_any_size(pt2_model, generator, size):
    program = torch.export.load(pt2_model).module()
    content = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = program(content)
    assert out.shape == (1, 3, *size)
    assert (out - expected(generator, content)).abs().max().item() <= 1e-3


def test_onnx_model_declares_opset_and_dynamic_sizes(onnx_model):
    import onnx

    model = onnx.load(str(onnx_model))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_writes_the_pixel_convention(request, fmt):
    path = request.getfixturevalue(f"{fmt}_model")
    info = json.loads(path.with_name(path.name + ".json").read_text())
    assert info["format"] == fmt and info["name"] == "tiny"
    for key, name in (("input", "content"), ("output", "stylized")):
        assert info[key]["name"] == name
        assert info[key]["range"] == [0.0, 1.0] and info[key]["layout"] == "NCHW"
        assert info[key]["dtype"] == "float32" and info[key]["color"].startswith("RGB")
    assert info["min_size"] == 16 and info["generator"]["channels"] == 8


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_stylize_runs_an_exported_model(request, tmp_path, generator, fmt):
    model = request.getfixturevalue(f"{fmt}_model")
    photos = tmp_path / "in"
    write_photo(photos / "a.png", (61, 45), seed=1)
    write_photo(photos / "tiny.png", (9, 12), seed=2)  # below the export's 16 px: padded
    out = tmp_path / "out"
    cfg = StylizeConfig(input=str(photos), ckpt=str(model), output=str(out))
    assert run(cfg) == 0
    for name, size in (("a.png", (61, 45)), ("tiny.png", (9, 12))):
        result = np.asarray(Image.open(out / name), dtype=np.float32) / 255
        assert Image.open(out / name).size == size
        content = torch.from_numpy(
            np.asarray(Image.open(photos / name), dtype=np.float32) / 255
        ).permute(2, 0, 1)[None]
        reference = expected(generator, content)[0].permute(1, 2, 0).numpy()
        assert np.abs(result - reference).max() <= 1 / 255 + 1e-6  # rounding to 8 bits


def test_corrupt_exported_models_are_clear_errors(tmp_path):
    for name in ("model.onnx", "model.pt2"):
        bad = tmp_path / name
        bad.write_bytes(b"\x00garbage")
        with pytest.raises(CheckpointError, match=name):
            load_exported(bad, torch.device("cpu"))[0](torch.rand(1, 3, 16, 16))
    with pytest.raises(CheckpointError, match="no such model file"):
        load_exported(tmp_path / "missing.onnx", torch.device("cpu"))


def test_export_command(tmp_path, ckpt):
    out = tmp_path / "exported" / "model.pt2"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "export.py"), f"ckpt={ckpt}", "format=pt2"]
        + [f"output={out}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and out.with_name("model.pt2.json").is_file()
    assert "check: max |export - PyTorch|" in proc.stdout
    assert not list(out.parent.glob(".*tmp*"))
    with pytest.raises(ConfigError, match="overwrite=true"):
        export_run(ExportConfig(ckpt=str(ckpt), format="pt2", output=str(out)))
    with pytest.raises(ConfigError, match="format"):
        export_run(ExportConfig(ckpt=str(ckpt), format="tflite"))
