"""Export a trained generator for use without this package, and run such an export.

Two formats, both with a dynamic batch, height and width:

- `onnx`: an ONNX model (opset ONNX_OPSET), for onnxruntime and other ONNX runtimes;
- `pt2`: a `torch.export` program (`torch.export.load(path).module()` runs it).

Beside the model a JSON file (`<model file>.json`) states the pixel convention, which is this
package's: float32 RGB, NCHW, values in [0, 1], in and out; at least MIN_SIZE px each side.
A conditioned generator's export takes a second input, `strength`: float32 [1], in [0, 1].
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_stylizer.checkpoint import CheckpointError
from gan_stylizer.models.generator import DEFAULT_STRENGTH, Generator

FORMATS = ("onnx", "pt2")
EXPORTED_SUFFIXES = (".onnx", ".pt2")
ONNX_OPSET = 18
MIN_SIZE = Generator.MIN_SIZE
MAX_SIZE = 32768


class ExportableGenerator(nn.Module):
    """The generator as exporters trace it: `Generator.forward`'s arithmetic for inputs of at
    least MIN_SIZE px, without its Python branches on the input size, which would freeze one
    size into the graph. [B, 3, H, W] in [0, 1] -> [B, 3, H, W] in [0, 1]."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator
        self.multiple = generator.MULTIPLE

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return self._stylize(content, None)

    def _stylize(self, content: torch.Tensor, strength: torch.Tensor | None) -> torch.Tensor:
        h, w = content.shape[-2:]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        x = F.pad(content * 2.0 - 1.0, (0, pad_w, 0, pad_h), mode="reflect")
        emb = None
        if strength is not None:  # [1] -> one embedding for the whole batch
            emb = self.generator.embed(strength).expand(content.shape[0], -1)
        y = self.generator.trunk(x, emb)
        # Negative padding crops. Slicing [..., :h, :w] instead makes torch.export demand a
        # proof that h fits the padded size, which its symbolic shapes cannot give.
        return torch.sigmoid(F.pad(y, (0, -pad_w, 0, -pad_h)))


class ExportableConditionedGenerator(ExportableGenerator):
    """(content [B, 3, H, W] in [0, 1], strength [1] in [0, 1]) -> [B, 3, H, W] in [0, 1]."""

    def forward(self, content: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        return self._stylize(content, strength)


def _dynamic_shapes(conditioned: bool = False) -> dict:
    dim = torch.export.Dim
    shapes = {
        "content": {
            0: dim("batch", min=1, max=1024),
            2: dim("height", min=MIN_SIZE, max=MAX_SIZE),
            3: dim("width", min=MIN_SIZE, max=MAX_SIZE),
        }
    }
    if conditioned:
        shapes["strength"] = {}  # always [1]
    return shapes


def metadata(fmt: str, label: str, generator: Generator, source: str | Path) -> dict:
    """The JSON written beside an export: what goes in, what comes out, where it came from."""
    image = {
        "shape": ["batch", 3, "height", "width"],
        "dtype": "float32",
        "layout": "NCHW",
        "color": "RGB (sRGB values, no colour management)",
        "range": [0.0, 1.0],
    }
    info = {
        "format": fmt,
        "name": label,
        "input": {"name": "content", **image},
        "output": {"name": "stylized", **image, "size": "the input's height and width"},
        **(
            {
                "strength": {
                    "name": "strength",
                    "shape": [1],
                    "dtype": "float32",
                    "range": [0.0, 1.0],
                    "meaning": "style strength; 0.5 is the model's default",
                }
            }
            if generator.conditioned
            else {}
        ),
        "min_size": MIN_SIZE,
        "max_size": MAX_SIZE,
        "generator": dict(generator.config),
        "source": str(source),
        "torch": torch.__version__,
    }
    if fmt == "onnx":
        info["opset"] = ONNX_OPSET
    return info


def export_generator(
    generator: Generator, fmt: str, path: str | Path, label: str, source: str | Path = ""
) -> tuple[Path, Path]:
    """Write the generator as `fmt` to path, and its JSON beside it; returns both paths.

    Both files are written to temporary names first and renamed into place.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conditioned = generator.conditioned
    wrapper = ExportableConditionedGenerator if conditioned else ExportableGenerator
    model = wrapper(generator.float().eval()).eval()
    # Batch 2: a batch of 1 would be frozen as a constant.
    example = (torch.rand(2, 3, 64, 96), *((torch.tensor([0.5]),) if conditioned else ()))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        with torch.no_grad():
            if fmt == "pt2":
                program = torch.export.export(
                    model, example, dynamic_shapes=_dynamic_shapes(conditioned)
                )
                torch.export.save(program, tmp)
            else:
                _export_onnx(model, example, tmp, conditioned)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    info_path = path.with_name(path.name + ".json")
    tmp_info = info_path.with_name(f".{info_path.name}.{os.getpid()}.tmp")
    tmp_info.write_text(json.dumps(metadata(fmt, label, generator, source), indent=2) + "\n")
    os.replace(tmp_info, info_path)
    return path, info_path


def _export_onnx(model: nn.Module, example: tuple, path: Path, conditioned: bool) -> None:
    import onnx  # the optional extra: pip install 'gan-stylizer[onnx]'

    # The exporter's graph passes log every step at INFO, which Hydra's logging would print.
    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING)
    program = torch.onnx.export(
        model,
        example,
        input_names=["content", "strength"] if conditioned else ["content"],
        output_names=["stylized"],
        dynamic_shapes=_dynamic_shapes(conditioned),
        opset_version=ONNX_OPSET,
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    proto = program.model_proto
    # The exporter names the output's size by its formula in the input's; it is the input's.
    for dim, name in zip(
        proto.graph.output[0].type.tensor_type.shape.dim,
        ["batch", 3, "height", "width"],
        strict=True,
    ):
        if isinstance(name, str):
            dim.dim_param = name
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


# ----------------------------------------------------------------------------------------------
# Running an export


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
    return apply, label


def _onnx_runner(path: Path, device: torch.device) -> Callable:
    try:
        import onnxruntime as ort
    except ImportError:
        raise CheckpointError(
            f"{path}: running an ONNX model needs onnxruntime: pip install 'gan-stylizer[onnx]'"
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


# ----------------------------------------------------------------------------------------------
# The export command


def run(cfg) -> tuple[Path, Path]:  # cfg: gan_stylizer.config.ExportConfig
    """Export cfg.ckpt's generator; with cfg.check, compare it with PyTorch. Returns the paths."""
    from gan_stylizer.checkpoint import load_generator
    from gan_stylizer.config import ConfigError, validate_export

    validate_export(cfg)
    out = Path(cfg.output or Path(cfg.ckpt).with_suffix(f".{cfg.format}")).expanduser()
    if out.suffix != f".{cfg.format}":
        raise ConfigError(f"output={out}: a {cfg.format} export is a .{cfg.format} file")
    if out.exists() and not cfg.overwrite:
        raise ConfigError(f"output={out} exists (overwrite=true replaces it)")
    generator, run_config = load_generator(cfg.ckpt)
    label = str(run_config.get("name") or Path(cfg.ckpt).stem)
    try:
        model_path, info_path = export_generator(generator, cfg.format, out, label, cfg.ckpt)
    except ImportError as err:
        raise ConfigError(
            f"format={cfg.format} needs {err.name}: pip install 'gan-stylizer[onnx]'"
        ) from None
    print(f"wrote {model_path} and {info_path}")
    if cfg.check:
        torch.manual_seed(0)
        content = torch.rand(1, 3, 67, 101)  # odd sizes: the padding inside is exercised
        apply, _ = load_exported(model_path, torch.device("cpu"))
        strengths = (0.0, 0.5, 1.0) if generator.conditioned else (None,)
        with torch.no_grad():
            diff = max(
                (apply(content, s) - generator(content, s)).abs().max().item() for s in strengths
            )
        print(f"check: max |export - PyTorch| = {diff:.2g} on a 101x67 image")
        if diff > 1e-3:
            raise CheckpointError(f"{model_path}: the export differs from PyTorch by {diff:.3g}")
    return model_path, info_path
