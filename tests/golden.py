"""Fixed outputs of the code as it was before the redesign (commit 4161bac), recomputed by the
code as it is: a fixed checkpoint and photo through the one-pass path, the tiled path and the
ONNX export, the first 20 steps of the optimization (L-BFGS and Adam), and every weight after 20
training steps from a fixed seed (plain and conditioned generator).

tests/data/golden_4161bac.pt holds what 4161bac computed (on a 2-core AVX2 AMD EPYC; this code
computed the same, bit for bit, on that machine). `python tests/golden.py OUT.pt` writes what the
current code computes; replace the file only for a change of behaviour that is meant.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_checkpoint, write_painting, write_photo  # noqa: E402

from gan_stylizer.checkpoints import load_checkpoint, load_generator  # noqa: E402
from gan_stylizer.config.compose import to_dataclass  # noqa: E402
from gan_stylizer.config.schema import TrainConfig  # noqa: E402
from gan_stylizer.inference.export import export_generator  # noqa: E402
from gan_stylizer.inference.exported import load_exported  # noqa: E402
from gan_stylizer.inference.onepass import OnePass  # noqa: E402
from gan_stylizer.io.images import load_image  # noqa: E402
from gan_stylizer.models.vgg import VGG19Features  # noqa: E402
from gan_stylizer.optimize import optimize_image  # noqa: E402
from gan_stylizer.perceptual import PerceptualCriterion  # noqa: E402
from gan_stylizer.training.run import run  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "golden_4161bac.pt"


def inference_outputs(tmp: Path) -> dict[str, torch.Tensor]:
    out = {}
    photo = load_image(write_photo(tmp / "photo.png", (150, 130), seed=3))
    for cond in (False, True):
        tag = "cond" if cond else "plain"
        ckpt = write_checkpoint(tmp / f"{tag}.ckpt", 8, 2, seed=5, conditioned=cond)
        generator, _ = load_generator(ckpt)
        s = 0.7 if cond else None
        out[f"{tag}_whole"] = OnePass(generator, "cpu", torch.float32, "off")(photo, s)
        out[f"{tag}_tiled"] = OnePass(generator, "cpu", torch.float32, 64)(photo, s)
        model, _ = export_generator(generator, "onnx", tmp / f"{tag}.onnx", tag)
        apply, _ = load_exported(model, torch.device("cpu"))
        out[f"{tag}_onnx"] = apply(photo, s) if cond else apply(photo)
    return out


def optimization_outputs(tmp: Path) -> dict[str, torch.Tensor]:
    painting = write_painting(tmp / "painting.png")
    write_photo(tmp / "photo.png", (150, 130), seed=3)
    vgg = VGG19Features(["relu1_1", "relu2_1", "relu3_1"], weights="none")
    criterion = PerceptualCriterion(vgg, {"relu1_1": 0.5, "relu2_1": 0.5}, "relu3_1")
    criterion.set_style(load_image(painting, size=64))
    small = load_image(tmp / "photo.png", size=48)
    out = {}
    for opt in ("lbfgs", "adam"):
        result = optimize_image(
            small, criterion, alpha=1e4, beta=1.0, steps=20, optimizer=opt, progress=False, tol=0
        )
        out[f"optimize_{opt}"] = result.image
    return out


def training_weights(tmp: Path, conditioned: bool) -> dict[str, torch.Tensor]:
    painting = write_painting(tmp / "painting.png")
    photos = tmp / "photos"
    for i, size in enumerate([(80, 60), (64, 96), (100, 70), (72, 72)]):
        write_photo(photos / f"p{i}.png", size, seed=i)
    cfg = {
        "data": {
            "source": "folder",
            "root": str(photos),
            "image_size": 32,
            "resize_long_side": [40, 48],
            "batch_size": 2,
            "num_workers": 0,
            "val_count": 1,
            "val_size": 48,
        },
        "style": {"name": "test", "path": str(painting), "size": 64},
        "model": {
            "generator": {"channels": 4, "n_residual": 1, "conditioned": conditioned},
            "discriminator": {"channels": 4, "n_layers": 2},
        },
        "loss": {
            "adv": 0.5,
            "tv": 1.0,
            "r1": 1.0,
            "vgg": {"weights": "none"},
            "style_layers": {"relu1_1": 0.5, "relu2_1": 0.5},
            "content_layer": "relu2_1",
        },
        "trainer": {
            "steps": 20,
            "warmup_steps": 5,
            "ckpt_every": 20,
            "image_every": 20,
            "log_every": 5,
            "precision": "32",
            "accelerator": "cpu",
            "devices": 1,
        },
    }
    last = run(to_dataclass(cfg, TrainConfig), tmp / f"run_{conditioned}")
    tag = "cond" if conditioned else "plain"
    return {f"train_{tag}/{k}": v for k, v in load_checkpoint(last)["state_dict"].items()}


def everything(tmp: Path) -> dict[str, torch.Tensor]:
    out = inference_outputs(tmp) | optimization_outputs(tmp)
    for conditioned in (False, True):
        out |= training_weights(tmp, conditioned)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.save(everything(Path(tempfile.mkdtemp())), sys.argv[1])
