"""Shared fixtures: small generated photos and paintings; nothing is read from outside tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_photo(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A smooth random 'photo' (gradients + blobs) as an 8-bit RGB file."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack(
        [np.sin(xx * rng.uniform(2, 8) + c) * np.cos(yy * rng.uniform(2, 8)) for c in range(3)], -1
    )
    img = (img - img.min()) / (np.ptp(img) + 1e-8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return path


def write_painting(path: Path, size: tuple[int, int] = (96, 64), seed: int = 7) -> Path:
    """Stripes and noise: a 'painting' with strong texture."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = (np.sin((xx + yy) / 3.0) > 0).astype(np.float32)
    img = np.stack([stripes, 1 - stripes * 0.5, rng.random((h, w))], -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i, size in enumerate([(80, 60), (64, 96), (100, 70), (72, 72)]):
        write_photo(root / ("sub" if i % 2 else "") / f"p{i}.png", size, seed=i)
    return root


@pytest.fixture
def painting(tmp_path: Path) -> Path:
    return write_painting(tmp_path / "painting.png")


def write_checkpoint(
    path: Path,
    channels: int = 8,
    n_residual: int = 1,
    seed: int = 0,
    name: str = "tiny",
    conditioned: bool = False,
) -> Path:
    """A checkpoint as training writes one (plain data, EMA weights), of a random generator.
    conditioned: with a strength input whose FiLM weights are random too (not the zeros of a
    fresh model, under which every strength gives the same image)."""
    import torch

    from gan_stylizer.models.generator import Generator

    torch.manual_seed(seed)
    generator = Generator(channels=channels, n_residual=n_residual, conditioned=conditioned)
    for module in generator.modules():
        if hasattr(module, "film"):
            torch.nn.init.normal_(module.film.weight, std=0.3)
            torch.nn.init.normal_(module.film.bias, std=0.1)
    state = {f"g_ema.{k}": v for k, v in generator.state_dict().items()}
    config = {"name": name, "model": {"generator": generator.config}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": {"config": config}, "state_dict": state}, path)
    return path


def tiny_train_overrides(photo_dir: Path, painting: Path) -> list[str]:
    """train.py overrides for a run of seconds: debug=fast on the test photos and painting,
    VGG with random weights."""
    return [
        "debug=fast",
        "data=folder",
        f"data.root={photo_dir}",
        f"style.path={painting}",
        "style.name=test",
        "loss.vgg.weights=none",
    ]


def load_research(name: str):
    """research/<name>.py as a module. research/ is not a package and its scripts import
    trainings by name, as when run from research/, so trainings is loaded first and registered
    in sys.modules (its dataclass looks its module up there)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "research"
    for module_name in dict.fromkeys(("trainings", name)):
        spec = importlib.util.spec_from_file_location(module_name, folder / f"{module_name}.py")
        module = importlib.util.module_from_spec(spec)
        if module_name == "trainings":
            sys.modules["trainings"] = module
        spec.loader.exec_module(module)
    return module
