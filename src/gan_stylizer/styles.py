"""Style registry: a style name resolves to a verified local painting file.

cached -> verified -> used. Missing -> downloaded once from a URL pinned to a commit, checked
against its sha256 while streaming, then renamed into the cache (never a half-written file).
Offline or failed -> a one-line `StyleError` that says exactly where to put the file by hand.
A user's own painting (`style.path=`) bypasses the registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_stylizer.errors import StyleError
from gan_stylizer.io.atomic import create_temp
from gan_stylizer.io.images import load_image

__all__ = ["REGISTRY", "StyleError", "StyleSpec", "resolve_style", "sha256_file"]

# A painting is a few MB; anything far bigger is not the file we pinned, so stop streaming it.
_MAX_DOWNLOAD_BYTES = 100 * 2**20
_CHUNK = 1 << 16
_OWN_PAINTING = "style.path=/path/to/painting.jpg"


@dataclass(frozen=True)
class StyleSpec:
    """A registered painting: download URL (pinned to a commit) and the sha256 of its bytes.

    `filename` is the name in the cache folder; it defaults to "<name>.jpg".
    """

    name: str
    title: str
    url: str
    sha256: str
    filename: str = ""

    def __post_init__(self) -> None:
        sha = self.sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ValueError(f"style {self.name!r}: sha256 must be 64 hex digits, got {sha!r}")
        object.__setattr__(self, "sha256", sha)
        filename = self.filename or f"{self.name}.jpg"
        # The name is joined onto the cache folder: it must not point anywhere else.
        if filename in (".", "..") or Path(filename).name != filename or "\\" in filename:
            raise ValueError(f"style {self.name!r}: filename must be a bare name, got {filename!r}")
        object.__setattr__(self, "filename", filename)


_NEURAL_STYLE = (
    "https://raw.githubusercontent.com/jcjohnson/neural-style/"
    "07c4b8299f8fbdafec0c514fc820ff1d7ff62e46"
)
_FAST_NEURAL_STYLE = (
    "https://raw.githubusercontent.com/jcjohnson/fast-neural-style/"
    "813c83441953ead2adb3f65f4cc2d5599d735fa7"
)
_FAST_STYLE_TRANSFER = (
    "https://raw.githubusercontent.com/lengstrom/fast-style-transfer/"
    "0d3d981f7ab948253d355585bdbdfa914247b4d0"
)

REGISTRY: dict[str, StyleSpec] = {
    spec.name: spec
    for spec in (
        StyleSpec(
            name="starry_night",
            title="Vincent van Gogh, The Starry Night (1889)",
            url=f"{_NEURAL_STYLE}/examples/inputs/starry_night.jpg",
            sha256="0592ab0f7b51b3ce72608a95e53880bd93971e5b48f93a0ce8dfd3cbccf3d098",
        ),
        StyleSpec(
            name="the_scream",
            title="Edvard Munch, The Scream (1893)",
            url=f"{_NEURAL_STYLE}/examples/inputs/the_scream.jpg",
            sha256="f3075cddeb974a9ee1d6418f7f33fd05185a7ac7dcb4288bd2805d499a9dcaee",
        ),
        StyleSpec(
            name="great_wave",
            title="Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
            url=f"{_FAST_NEURAL_STYLE}/images/styles/wave.jpg",
            sha256="14bcf58a39b7095168f27756d76d0c615bb8954acc5eae9e62c66a9684c2ee2b",
        ),
        StyleSpec(
            name="composition_vii",
            title="Wassily Kandinsky, Composition VII (1913)",
            url=f"{_FAST_NEURAL_STYLE}/images/styles/composition_vii.jpg",
            sha256="8f992ed4aecd6dd56972d7bc8166761de7c94e670ee6effa8fd05f3daeb33409",
        ),
        StyleSpec(
            name="shipwreck_of_the_minotaur",
            title="J. M. W. Turner, The Shipwreck of the Minotaur (c. 1810)",
            url=f"{_FAST_STYLE_TRANSFER}/examples/style/the_shipwreck_of_the_minotaur.jpg",
            sha256="05e6d80cee6b2df5c3425f8f59105e62804d8a7ffe688aa69739c1f787a09dd9",
        ),
    )
}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes as 64 lowercase hex digits (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_style(
    name: str | None,
    path: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str],
    *,
    download: bool = True,
    timeout: float = 30.0,
    registry: Mapping[str, StyleSpec] | None = None,
) -> Path:
    """A local file for a style: `path` if given (then `name` is only a label), else the
    verified cache file `cache_dir/<filename>` of registry entry `name`, downloaded if missing.

    The content of a user's `path` is not checked here: the caller reads it through
    `images.load_image`, which validates it. `registry` defaults to `REGISTRY` (tests pass
    their own). Raises `StyleError` with a one-line message a user can act on.
    """
    if path is not None:
        return _own_painting(path)
    registry = REGISTRY if registry is None else registry
    known = ", ".join(sorted(registry))
    if name is None:
        raise StyleError(f"no style given: set style.name to one of {known}, or {_OWN_PAINTING}")
    spec = registry.get(name)
    if spec is None:
        raise StyleError(
            f"unknown style {name!r}; known styles: {known}; "
            f"or use any painting with {_OWN_PAINTING}"
        )

    target = Path(cache_dir).expanduser() / spec.filename
    if target.is_file():
        return _verified(spec, target)
    if target.exists():
        raise StyleError(f"{target}: is in the way of style {name!r} and is not a file; remove it")

    # An absolute path: the user acts on this message from wherever their shell is.
    by_hand = f"place the file at {target.absolute()} (sha256 {spec.sha256}), from {spec.url}"
    if not download:
        raise StyleError(f"style {name!r} is not cached and downloading is off; {by_hand}")
    try:
        _download(spec, target, timeout)
    except StyleError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as err:
        # URLError, HTTPError, timeouts and refused connections are all OSErrors; a server
        # that hangs up mid-body raises IncompleteRead (HTTPException); a bad URL ValueError.
        reason = _download_reason(err, timeout)
        raise StyleError(f"style {name!r} could not be downloaded ({reason}); {by_hand}") from None
    return target


def _own_painting(path: str | os.PathLike[str]) -> Path:
    file = Path(path).expanduser()
    shown = f"style.path={os.fspath(path)}"
    if file.is_dir():
        raise StyleError(f"{shown}: is a folder; give an image file")
    if not file.is_file():
        if file.is_symlink():
            raise StyleError(f"{shown}: a symbolic link that loops or points nowhere")
        raise StyleError(f"{shown}: no such file")
    if not os.access(file, os.R_OK):
        raise StyleError(f"{shown}: permission denied")
    return file


def _verified(spec: StyleSpec, target: Path) -> Path:
    try:
        got = sha256_file(target)
    except OSError as err:
        why = _download_reason(err)
        raise StyleError(f"{target}: cannot read the cached style ({why})") from None
    if got != spec.sha256:
        # Never delete it ourselves: it may be a file the user put there on purpose.
        raise StyleError(
            f"{target}: the cached file for style {spec.name!r} is corrupt or a different file "
            f"(sha256 {got}, expected {spec.sha256}); delete the file to download it again, "
            f"or use your own painting with {_OWN_PAINTING}"
        )
    return target


def _download(spec: StyleSpec, target: Path, timeout: float) -> None:
    """Stream spec.url into a temporary file beside target, hashing as it goes; rename it into
    place only if the sha256 matches. No temporary file is left behind on any failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = create_temp(target, ".part")
    tmp: str | None = tmp_name
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as resp:
            while chunk := resp.read(_CHUNK):
                received += len(chunk)
                if received > _MAX_DOWNLOAD_BYTES:
                    raise StyleError(
                        f"style {spec.name!r}: {spec.url} sent more than "
                        f"{_MAX_DOWNLOAD_BYTES // 2**20} MiB, not the pinned painting; nothing "
                        "was saved"
                    )
                digest.update(chunk)
                out.write(chunk)
            # urllib returns a short body without complaint when the server hangs up early.
            announced = resp.headers.get("Content-Length", "")
            if announced.isdigit() and received != int(announced):
                raise ConnectionError(f"connection closed after {received} of {announced} bytes")
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != spec.sha256:
            raise StyleError(
                f"style {spec.name!r}: the download from {spec.url} has sha256 {got}, expected "
                f"{spec.sha256}; nothing was saved"
            )
        os.replace(tmp_name, target)
        tmp = None
    finally:
        if tmp is not None:  # any failure, including KeyboardInterrupt: no temp file left
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _download_reason(err: BaseException, timeout: float | None = None) -> str:
    """A short reason for a failed download or read: 'HTTP 404 Not Found', 'timed out', ..."""
    if isinstance(err, urllib.error.HTTPError):
        err.close()  # it holds the response body open
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        if not isinstance(err.reason, BaseException):  # e.g. "no host given"
            return str(err.reason)
        err = err.reason  # the socket error underneath: refused, timed out, unknown host
    if isinstance(err, TimeoutError) and timeout is not None:
        return f"no answer within {timeout:g} s"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def default_data_dir() -> Path:
    """<repo>/data for a source checkout (the usual install), else ~/.cache/gan-stylizer."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    return Path.home() / ".cache" / "gan-stylizer"


def data_dir_of(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else default_data_dir()


def load_style_image(style_cfg, data_dir: Path, local_rank: int = 0) -> torch.Tensor:
    """The painting named by the style config, RGB [0,1] [1,3,H,W] at style.size long side."""
    path = fetch_style(style_cfg, data_dir / "styles", local_rank)
    return load_image(path, size=style_cfg.size)


def fetch_style(
    style_cfg, cache_dir: Path, local_rank: int = 0, wait_s: float = 600.0, poll_s: float = 0.5
) -> Path:
    """The painting's local file. Only local rank 0 downloads a registry painting that is not
    cached yet; the other ranks of its node wait for the file (a download is renamed into place
    whole), so a node downloads it once, not once per rank."""
    spec = REGISTRY.get(style_cfg.name)
    if local_rank != 0 and style_cfg.path is None and spec is not None:
        target = Path(cache_dir) / spec.filename
        deadline = time.monotonic() + wait_s
        while not target.is_file():
            if time.monotonic() > deadline:
                raise StyleError(
                    f"style {style_cfg.name!r}: local rank {local_rank} waited {wait_s:g} s for "
                    f"local rank 0 to download {target}; see rank 0's error, or place the file "
                    "there by hand"
                )
            time.sleep(poll_s)
    return resolve_style(style_cfg.name, style_cfg.path, cache_dir, download=local_rank == 0)
