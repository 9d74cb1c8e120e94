"""The model zoo: trained stylizers installed with the package, one per painting of the style
registry, so that `stylize.py ckpt=starry_night input=photo.jpg` works before any training.

Each model is two files in gan_stylizer/pretrained/: `<name>.safetensors` (the EMA generator's
weights in fp16: safetensors holds tensors only, nothing is unpickled) and `<name>.json`, its
manifest: the painting and its sha256, the recipe (every config key that differs from the
defaults), the generator steps, the hardware and commit they ran on, the weights' sha256 and the
model's scores on content/val under the project's ruler. Loading checks the weights' sha256
against the manifest before it reads a byte of them as tensors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.errors import CheckpointError
from gan_stylizer.io import atomic
from gan_stylizer.io.names import safe_component
from gan_stylizer.models.generator import Generator

MANIFEST_KEYS = ("name", "painting", "generator", "recipe", "steps", "hardware", "commit", "sha256")


def _folder() -> Path:
    return Path(str(resources.files("gan_stylizer") / "pretrained"))


@dataclass(frozen=True)
class ZooModel:
    """A zoo entry: its name, its files and its manifest (a plain dict)."""

    name: str
    weights: Path
    manifest: dict

    @property
    def title(self) -> str:
        return str(self.manifest.get("painting", {}).get("title") or self.name)

    @property
    def steps(self) -> int:
        return int(self.manifest.get("steps") or 0)


def names() -> list[str]:
    """The zoo's model names, sorted."""
    folder = _folder()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.with_suffix(".safetensors").is_file())


def describe(name: str) -> ZooModel:
    """The entry `name` with its manifest read and checked (not its weights)."""
    if name not in names():
        known = ", ".join(names()) or "none installed"
        raise CheckpointError(f"ckpt={name}: no such file, and not a zoo model ({known})")
    folder = _folder()
    manifest_path = folder / f"{name}.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{manifest_path}: unreadable zoo manifest ({err})") from None
    missing = (
        [key for key in MANIFEST_KEYS if key not in manifest]
        if isinstance(manifest, dict)
        else ["all"]
    )
    if missing:
        raise CheckpointError(f"{manifest_path}: zoo manifest lacks {', '.join(missing)}")
    return ZooModel(name, folder / f"{name}.safetensors", manifest)


def load(name: str) -> tuple[Generator, dict]:
    """(generator in fp32, eval mode, on the CPU; its manifest) for a zoo model. Raises
    CheckpointError when the weights' sha256 differs from the manifest's or they do not fit."""
    model = describe(name)
    try:
        data = model.weights.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{model.weights}: cannot read ({err.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.manifest["sha256"]:
        raise CheckpointError(
            f"{model.weights}: sha256 {digest} is not the manifest's {model.manifest['sha256']} "
            "(a damaged or replaced file): reinstall gan-stylizer"
        )
    try:
        state = {k: v.float() for k, v in load_safetensors(data).items()}
        g = model.manifest["generator"]
        generator = Generator(
            channels=int(g["channels"]),
            n_residual=int(g["n_residual"]),
            norm=str(g["norm"]),
            conditioned=bool(g.get("conditioned", False)),
        )
        generator.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{model.weights}: not a loadable zoo model: {detail}") from None
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise CheckpointError(f"{model.weights}: holds NaN or infinite weights")
    return generator.eval().requires_grad_(False), model.manifest


def load_any(spec: str | Path) -> tuple[Generator, str]:
    """(generator, label) for ckpt=: a training checkpoint file, else a zoo name. A name that
    is neither gets one line listing the zoo."""
    path = Path(spec).expanduser()
    if path.is_file() or path.suffix or "/" in str(spec) or "\\" in str(spec):
        generator, config = load_generator(path)
        style = config.get("style") if isinstance(config.get("style"), dict) else {}
        label = config.get("name") or style.get("name") or "stylized"
        # A label becomes part of output file names: whatever the checkpoint says, one safe
        # path component (no separator, no .., no control characters).
        return generator, safe_component(label)
    generator, manifest = load(str(spec))  # refuses an unknown name, listing the zoo
    return generator, safe_component(manifest["name"])


def save(generator: Generator, folder: str | Path, name: str, manifest: dict) -> tuple[Path, Path]:
    """Write `<name>.safetensors` (fp16) and `<name>.json` (manifest + the weights' sha256)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to(torch.float16).contiguous() for k, v in generator.state_dict().items()
    }
    data = save_safetensors(state, metadata={"format": "gan-stylizer zoo 1", "name": name})
    weights, info = folder / f"{name}.safetensors", folder / f"{name}.json"
    atomic.write_bytes(weights, data)
    full = {"name": name, **manifest, "sha256": hashlib.sha256(data).hexdigest()}
    atomic.write_text(info, json.dumps(full, indent=2) + "\n")
    return weights, info
