"""Running an exported model (.onnx through onnxruntime, .pt2 through torch.export) with the
same call as a trained generator: [B, 3, H, W] in [0, 1] (and a strength) -> float32 on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from gan_stylizer.errors import CheckpointError
from gan_stylizer.inference.export import MIN_SIZE
from gan_stylizer.io.names import safe_component
from gan_stylizer.models.generator import DEFAULT_STRENGTH, Generator

INSTALL_ONNX = "pip install 'gan-stylizer[onnx]'"


def load_exported(path: str | Path, device: torch.device) -> tuple[Callable, str]:
    """(stylize function, label) for an exported model file (.onnx: onnxruntime; .pt2:
    torch.export). The function maps [B, 3, H, W] in [0, 1] (and, for a conditioned model, a
    strength in [0, 1], default 0.5: `apply(content, strength=None)`) to float32 on the CPU;
    `apply.conditioned` says which. Raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    info_path = path.with_name(path.name + ".json")
    label = path.stem
    if info_path.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            label = str(json.loads(info_path.read_text()).get("name") or label)
    label = safe_component(label)  # the JSON is data from outside; the label names files
    runner = _onnx_runner if path.suffix == ".onnx" else _pt2_runner
    run, conditioned = runner(path, device)

    def apply(content: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        h, w = content.shape[-2:]
        if h < MIN_SIZE or w < MIN_SIZE:  # below the export's minimum: pad as Generator does
            content = Generator.pad(content)
        if conditioned:
            s = DEFAULT_STRENGTH if strength is None else float(strength)
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"strength must be in [0, 1], got {s}")
            out = run(content.float(), torch.tensor([s], dtype=torch.float32))
        elif strength is not None:
            raise ValueError(f"{path} has no strength input (its generator was not conditioned)")
        else:
            out = run(content.float())
        return out[..., :h, :w].to("cpu", torch.float32)

    apply.conditioned = conditioned
    # One small probe before any photo: a model with NaN or infinite weights is refused here,
    # once, rather than on every image.
    probe = apply(torch.full((1, 3, MIN_SIZE, MIN_SIZE), 0.5))
    if not torch.isfinite(probe).all():
        raise CheckpointError(f"{path}: its output is NaN or infinite (broken weights)")
    return apply, label


@torch.no_grad()
def difference(apply: Callable, generator: Generator) -> float:
    """The largest |export - PyTorch| on a random 101x67 image (odd sizes: the padding inside
    is exercised), at strengths 0, 0.5 and 1 for a conditioned generator; NaN if any is NaN."""
    torch.manual_seed(0)
    content = torch.rand(1, 3, 67, 101)
    strengths = (0.0, 0.5, 1.0) if generator.conditioned else (None,)
    diffs = [(apply(content, s) - generator(content, s)).abs().max().item() for s in strengths]
    # max() of a list that holds NaN depends on the order: any NaN makes the check NaN.
    return math.nan if any(d != d for d in diffs) else max(diffs)


def _onnx_runner(path: Path, device: torch.device) -> Callable:
    try:
        import onnxruntime as ort
    except ImportError:
        raise CheckpointError(
            f"{path}: running an ONNX model needs onnxruntime: {INSTALL_ONNX}"
        ) from None
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        first = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{path}: not a readable ONNX model: {first}") from None
    inputs = session.get_inputs()
    if not 1 <= len(inputs) <= 2 or inputs[0].shape[1] != 3:
        raise CheckpointError(
            f"{path}: not a stylizer (expected an input [batch, 3, H, W], and a strength)"
        )
    names = [i.name for i in inputs]

    def run(content: torch.Tensor, *strength: torch.Tensor) -> torch.Tensor:
        feed = {n: t.cpu().numpy() for n, t in zip(names, (content, *strength), strict=True)}
        return torch.from_numpy(session.run(None, feed)[0])

    return run, len(inputs) == 2


def _pt2_runner(path: Path, device: torch.device) -> Callable:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a torch.export program (not a zip archive)")
    logger = logging.getLogger("torch.export")  # would log a traceback before raising
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        program = torch.export.load(path)
        module = program.module()
    except Exception as err:  # a zip without the program, a corrupt or foreign file, ...
        first = " ".join(str(err).split())[:200] or type(err).__name__
        if "warnings above" in first:  # they were silenced; say what they would have said
            first = "the archive holds no exported program this PyTorch can read"
        raise CheckpointError(f"{path}: not a readable torch.export program: {first}") from None
    finally:
        logger.setLevel(level)
    if device.type != "cpu":
        module = module.to(device)
    # The program's inputs: content, and for a conditioned generator its strength.
    n_inputs = len(program.graph_signature.user_inputs)

    @torch.no_grad()
    def run(content: torch.Tensor, *strength: torch.Tensor) -> torch.Tensor:
        return module(content.to(device), *(s.to(device) for s in strength))

    return run, n_inputs == 2
