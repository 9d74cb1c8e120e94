"""What the web page offers: the zoo's models and the checkpoints and exports found under a
folder, each with its name, its painting (a thumbnail) and its steps; loaded once, then kept."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gan_stylizer import zoo
from gan_stylizer.api import Stylizer
from gan_stylizer.checkpoints import load_checkpoint
from gan_stylizer.errors import CheckpointError, ImageError
from gan_stylizer.io.images import read_rgb, resize_pil
from gan_stylizer.io.inputs import sample_photos
from gan_stylizer.styles import REGISTRY

MODEL_SUFFIXES = (".ckpt", ".onnx", ".pt2")
MAX_FOUND = 200  # models listed from models=: a folder of thousands is a mistake, not a menu
THUMBNAIL = 160  # px, long side


@dataclass(frozen=True)
class Model:
    """One entry of the page's model menu."""

    key: str  # what the menu shows: a zoo name, or the file's path below models=
    spec: str  # what Stylizer.load takes: the zoo name or the file's path
    painting: str  # the painting's title or name
    style: str | None  # the painting's name in the style registry, if it is one of them
    steps: int | None  # generator steps trained
    conditioned: bool  # a strength dial

    def describe(self) -> str:
        steps = f"{self.steps:,} generator steps" if self.steps else "steps unknown"
        dial = "strength dial" if self.conditioned else "one fixed strength"
        return f"**{self.key}**: {self.painting}; {steps}; {dial}"


def zoo_models() -> list[Model]:
    out = []
    for name in zoo.names():
        manifest = zoo.describe(name).manifest
        painting = manifest.get("painting") or {}
        out.append(
            Model(
                key=name,
                spec=name,
                painting=str(painting.get("title") or painting.get("name") or name),
                style=str(painting.get("name") or "") or None,
                steps=int(manifest.get("steps") or 0) or None,
                conditioned=bool((manifest.get("generator") or {}).get("conditioned")),
            )
        )
    return out


def _checkpoint_model(path: Path, key: str) -> Model:
    ckpt = load_checkpoint(path)
    try:
        config = ckpt["hyper_parameters"]["config"]
        style = config.get("style") or {}
        conditioned = bool(config["model"]["generator"].get("conditioned", False))
    except (KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{path}: not a gan-stylizer checkpoint") from None
    state = ckpt.get("gan_stylizer") or {}
    steps = state.get("g_step") if isinstance(state, dict) else None
    name = str(style.get("name") or config.get("name") or path.stem)
    return _file_model(path, key, name, steps if isinstance(steps, int) else None, conditioned)


def _exported_model(path: Path, key: str) -> Model:
    info_path = path.with_name(path.name + ".json")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CheckpointError(f"{info_path}: missing or unreadable (export it again)") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{info_path}: not an export's description")
    return _file_model(path, key, str(info.get("name") or path.stem), None, "strength" in info)


def _file_model(path: Path, key: str, name: str, steps: int | None, conditioned: bool) -> Model:
    """A model file's entry; its painting is the registry's when `name` is one of them."""
    spec = REGISTRY.get(name)
    return Model(
        key=key,
        spec=str(path),
        painting=spec.title if spec else name,
        style=name if spec else None,
        steps=steps,
        conditioned=conditioned,
    )


def find_models(folder: str | Path | None) -> tuple[list[Model], list[str]]:
    """(the zoo's models, then those below `folder`; one line per file that was skipped)."""
    models, skipped = zoo_models(), []
    if folder is None:
        return models, skipped
    root = Path(folder).expanduser()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES)
    if len(files) > MAX_FOUND:
        skipped.append(f"{root}: {len(files)} model files; listing the first {MAX_FOUND}")
        files = files[:MAX_FOUND]
    for path in files:
        key = path.relative_to(root).as_posix()
        try:
            if path.suffix.lower() == ".ckpt":
                models.append(_checkpoint_model(path, key))
            else:
                models.append(_exported_model(path, key))
        except CheckpointError as err:
            skipped.append(f"skip: {err}")
    return models, skipped


class Models:
    """The menu, and the models loaded so far (at most `keep` of them, the least recently used
    going first): a model loads on its first use, then stays."""

    def __init__(self, entries: list[Model], device: str, precision: str, keep: int = 4):
        self.entries = {m.key: m for m in entries}
        self.device, self.precision, self.keep = device, precision, keep
        self._loaded: OrderedDict[str, Stylizer] = OrderedDict()
        self._thumbnails: dict[str, Image.Image] = {}
        self._lock = threading.Lock()

    def entry(self, key: str) -> Model:
        if key not in self.entries:
            raise CheckpointError(f"model {key!r}: not on this page ({', '.join(self.entries)})")
        return self.entries[key]

    def get(self, key: str) -> Stylizer:
        entry = self.entry(key)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            stylizer = Stylizer.load(entry.spec, self.device, self.precision)
            self._loaded[key] = stylizer
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
            return stylizer

    def thumbnail(self, key: str, styles_dir: Path) -> tuple[Image.Image | None, str]:
        """(a small picture, what it is): the painting when it is on this machine, else the
        model's style on a sample photo."""
        entry = self.entry(key)
        spec = REGISTRY.get(entry.style or "")
        if spec is not None and (styles_dir / spec.filename).is_file():
            try:
                painting = read_rgb(styles_dir / spec.filename)
                return resize_pil(painting, THUMBNAIL), "the painting"
            except ImageError:
                pass
        with self._lock:
            cached = self._thumbnails.get(key)
        if cached is None:
            photo = next(p for p in sample_photos() if p.name == "chelsea.png")
            cached = self.get(key)(resize_pil(read_rgb(photo), THUMBNAIL))
            with self._lock:
                self._thumbnails[key] = cached
        return cached, "its style on a sample photo (the painting is not on this machine)"
