"""Export a trained generator for use without this package, and run such an export.

Two formats, both with a dynamic batch, height and width:

- `onnx`: an ONNX model (opset ONNX_OPSET), for onnxruntime and other ONNX runtimes;
- `pt2`: a `torch.export` program (`torch.export.load(path).module()` runs it).

Beside the model a JSON file (`<model file>.json`) states the pixel convention, which is this
package's: float32 RGB, NCHW, values in [0, 1], in and out; at least MIN_SIZE px each side.
A conditioned generator's export takes a second input, `strength`: float32 [1], in [0, 1].
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_stylizer.config.schema import FORMATS
from gan_stylizer.io import atomic
from gan_stylizer.models.generator import Generator

ONNX_OPSET = 18
# Raise it whenever the graph an export writes changes (ExportableGenerator, _export_onnx):
# backend=onnxruntime's cache then makes its exports again (inference/backends.py).
EXPORT_VERSION = 1
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
    # Serialized in memory, then written by the one atomic writer: a full disk or a read-only
    # folder is an OSError naming `path` (torch's own file writer aborts the process instead).
    with torch.no_grad():
        if fmt == "pt2":
            program = torch.export.export(
                model, example, dynamic_shapes=_dynamic_shapes(conditioned)
            )
            buffer = io.BytesIO()
            torch.export.save(program, buffer)
            data = buffer.getvalue()
        else:
            data = _export_onnx(model, example, conditioned)
    atomic.write_bytes(path, data)
    info_path = path.with_name(path.name + ".json")
    info = json.dumps(metadata(fmt, label, generator, source), indent=2) + "\n"
    atomic.write_text(info_path, info)
    return path, info_path


def _export_onnx(model: nn.Module, example: tuple, conditioned: bool) -> bytes:
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
    return proto.SerializeToString()


# ----------------------------------------------------------------------------------------------
# Running an export


# ----------------------------------------------------------------------------------------------
# The export command
