"""Style registry: a style name resolves to a verified local painting.

cached -> verified -> used; missing -> downloaded once (URL pinned to a commit), verified,
written atomically; offline and missing -> an error that says exactly where to put the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StyleSpec:
    name: str
    title: str
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}.jpg"


_NEURAL_STYLE = "https://raw.githubusercontent.com/jcjohnson/neural-style/07c4b8299f8fbdafec0c514fc820ff1d7ff62e46"
_FAST_NEURAL_STYLE = "https://raw.githubusercontent.com/jcjohnson/fast-neural-style/813c83441953ead2adb3f65f4cc2d5599d735fa7"
_FAST_STYLE_TRANSFER = "https://raw.githubusercontent.com/lengstrom/fast-style-transfer/0d3d981f7ab948253d355585bdbdfa914247b4d0"

REGISTRY: dict[str, StyleSpec] = {
    spec.name: spec
    for spec in (
        StyleSpec(
            "starry_night",
            "Vincent van Gogh, The Starry Night (1889)",
            f"{_NEURAL_STYLE}/examples/inputs/starry_night.jpg",
            "0592ab0f7b51b3ce72608a95e53880bd93971e5b48f93a0ce8dfd3cbccf3d098",
        ),
        StyleSpec(
            "the_scream",
            "Edvard Munch, The Scream (1893)",
            f"{_NEURAL_STYLE}/examples/inputs/the_scream.jpg",
            "f3075cddeb974a9ee1d6418f7f33fd05185a7ac7dcb4288bd2805d499a9dcaee",
        ),
        StyleSpec(
            "great_wave",
            "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
            f"{_FAST_NEURAL_STYLE}/images/styles/wave.jpg",
            "14bcf58a39b7095168f27756d76d0c615bb8954acc5eae9e62c66a9684c2ee2b",
        ),
        StyleSpec(
            "composition_vii",
            "Wassily Kandinsky, Composition VII (1913)",
            f"{_FAST_NEURAL_STYLE}/images/styles/composition_vii.jpg",
            "8f992ed4aecd6dd56972d7bc8166761de7c94e670ee6effa8fd05f3daeb33409",
        ),
        StyleSpec(
            "shipwreck_of_the_minotaur",
            "J. M. W. Turner, The Shipwreck of the Minotaur (c. 1810)",
            f"{_FAST_STYLE_TRANSFER}/examples/style/the_shipwreck_of_the_minotaur.jpg",
            "05e6d80cee6b2df5c3425f8f59105e62804d8a7ffe688aa69739c1f787a09dd9",
        ),
    )
}


class StyleError(Exception):
    """A style cannot be resolved to a usable file; the message (one line) says what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(spec: StyleSpec, target: Path, timeout: float) -> None:
    """Stream the URL into a temporary file beside target, verify, rename; nothing is left
    behind on any failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != spec.sha256:
            raise StyleError(
                f"style '{spec.name}': the download from {spec.url} has sha256 {got}, expected "
                f"{spec.sha256}; nothing was saved"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_style(
    name: str | None,
    path: str | os.PathLike | None,
    cache_dir: Path,
    *,
    download: bool = True,
    timeout: float = 30.0,
    registry: Mapping[str, StyleSpec] | None = None,
) -> Path:
    """A local, verified file for a style: `path` if given, else the registry entry `name`."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise StyleError(f"style.path={path}: no such file")
        if not os.access(p, os.R_OK):
            raise StyleError(f"style.path={path}: permission denied")
        return p
    registry = REGISTRY if registry is None else registry
    if name not in registry:
        raise StyleError(
            f"unknown style '{name}'; known: {', '.join(sorted(registry))}; "
            "or use any painting with style.path=/path/to/painting.jpg"
        )
    spec = registry[name]
    target = Path(cache_dir) / spec.filename
    if target.is_file():
        got = sha256_file(target)
        if got != spec.sha256:
            raise StyleError(
                f"{target}: sha256 {got} is not the pinned {spec.sha256} for style '{name}'; "
                "delete the file to download it again, or use style.path= for your own painting"
            )
        return target
    where = f"place the file at {target} (sha256 {spec.sha256}), from {spec.url}"
    if not download:
        raise StyleError(f"style '{name}' is not cached; {where}")
    try:
        _download(spec, target, timeout)
    except StyleError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise StyleError(f"style '{name}' could not be downloaded ({reason}); {where}") from None
    return target
