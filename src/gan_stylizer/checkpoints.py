"""Reading our checkpoints safely: plain data only (torch.load(weights_only=True)), and the
generator alone for inference: no VGG, no dataset, no training code needed."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from gan_stylizer.errors import CheckpointError
from gan_stylizer.models.generator import Generator


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, loaded with weights_only=True: pickled code is refused, not run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses anything but tensors and plain containers, without running it.
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise CheckpointError(
            f"{path}: refused: holds more than plain data (weights_only load failed: {first})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {first}"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a gan-stylizer checkpoint (top level is not a dict)")
    return ckpt


def generator_config(ckpt: dict, path: Path) -> dict:
    try:
        config = ckpt["hyper_parameters"]["config"]
        g = config["model"]["generator"]
        out = {
            "channels": int(g["channels"]),
            "n_residual": int(g["n_residual"]),
            "norm": str(g["norm"]),
            "conditioned": bool(g.get("conditioned", False)),
        }
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise CheckpointError(
            f"{path}: not a gan-stylizer checkpoint (no hyper_parameters.config.model.generator)"
        ) from None
    # What a checkpoint says is data from outside: sizes are bounded before anything is built.
    if not (1 <= out["channels"] <= 1024 and 0 <= out["n_residual"] <= 64):
        raise CheckpointError(
            f"{path}: generator channels={out['channels']}, n_residual={out['n_residual']}: "
            "outside what training makes (1-1024, 0-64)"
        )
    return out


def load_generator(path: str | Path, use_ema: bool = True) -> tuple[Generator, dict]:
    """(generator in eval mode on CPU, the run's config as a plain dict) from a checkpoint."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    g_cfg = generator_config(ckpt, path)
    prefix = "g_ema." if use_ema else "generator."
    state = ckpt.get("state_dict", {})
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: its state_dict is a {type(state).__name__}, not a dict")
    weights = {
        k[len(prefix) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)
    }
    if not weights:
        raise CheckpointError(f"{path}: holds no {prefix.rstrip('.')} weights")
    wrong = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
    if wrong:
        raise CheckpointError(f"{path}: {prefix}{wrong[0]} is not a tensor")
    if not all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()):
        raise CheckpointError(f"{path}: holds NaN or infinite weights (a diverged run?)")
    try:
        generator = Generator(**g_cfg)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: bad generator config {g_cfg}: {err}") from None
    try:
        generator.load_state_dict(weights, strict=True)
    except (RuntimeError, TypeError, ValueError) as err:
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(
            f"{path}: weights do not fit the generator it describes: {detail}"
        ) from None
    config = ckpt["hyper_parameters"]["config"]
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: its config is not a dict")
    return generator.eval().requires_grad_(False), config
