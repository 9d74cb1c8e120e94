"""Style registry: pinned, verified, downloaded once and atomically, clear errors offline."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from gan_stylizer.errors import StyleError
from gan_stylizer.io.images import load_image
from gan_stylizer.styles import REGISTRY, StyleSpec, resolve_style, sha256_file

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "gan_stylizer" / "configs" / "style"


def make_painting() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 8), (30, 60, 200)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


PAINTING = make_painting()
PAINTING_SHA = hashlib.sha256(PAINTING).hexdigest()


@pytest.fixture
def server():
    """A loopback HTTP server: /painting.jpg is served, /short.jpg hangs up mid-body, else 404."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            if self.path in ("/painting.jpg", "/short.jpg"):
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(PAINTING)))
                self.end_headers()
                body = PAINTING if self.path == "/painting.jpg" else PAINTING[:10]
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def registry_for(url: str, sha: str = PAINTING_SHA) -> dict[str, StyleSpec]:
    return {"test": StyleSpec("test", "Test painting", url, sha)}


def failure(**kwargs) -> str:
    with pytest.raises(StyleError) as info:
        resolve_style(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_download_verifies_caches_and_is_not_repeated(tmp_path, server):
    base, hits = server
    registry = registry_for(f"{base}/painting.jpg")
    cache = tmp_path / "cache"  # created on demand
    path = resolve_style("test", None, cache, registry=registry)
    assert path == cache / "test.jpg" and path.read_bytes() == PAINTING
    assert load_image(path).shape == (1, 3, 8, 12)
    assert resolve_style("test", None, cache, registry=registry) == path
    assert hits == ["/painting.jpg"]  # the second call used the cache
    assert sorted(p.name for p in cache.iterdir()) == ["test.jpg"]


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, server):
    base, _ = server
    message = failure(
        name="test",
        path=None,
        cache_dir=tmp_path,
        registry=registry_for(f"{base}/painting.jpg", "0" * 64),
    )
    assert f"sha256 {PAINTING_SHA}, expected {'0' * 64}" in message
    assert list(tmp_path.iterdir()) == []


def test_failed_download_says_where_to_put_the_file(tmp_path, server):
    base, _ = server
    url = f"{base}/missing.jpg"
    message = failure(name="test", path=None, cache_dir=tmp_path, registry=registry_for(url))
    assert "HTTP 404" in message
    assert f"place the file at {tmp_path / 'test.jpg'} (sha256 {PAINTING_SHA})" in message
    assert url in message
    assert list(tmp_path.iterdir()) == []


def test_server_hanging_up_mid_body_leaves_nothing_behind(tmp_path, server):
    base, _ = server
    registry = registry_for(f"{base}/short.jpg")
    message = failure(name="test", path=None, cache_dir=tmp_path, registry=registry)
    assert "could not be downloaded" in message and str(tmp_path / "test.jpg") in message
    assert list(tmp_path.iterdir()) == []


def test_connection_refused(tmp_path):
    with socket.socket() as sock:  # a port that nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    registry = registry_for(f"http://127.0.0.1:{port}/painting.jpg")
    message = failure(name="test", path=None, cache_dir=tmp_path, registry=registry, timeout=5)
    assert "could not be downloaded" in message and str(tmp_path / "test.jpg") in message
    assert list(tmp_path.iterdir()) == []


def test_offline_and_missing(tmp_path):
    message = failure(name="starry_night", path=None, cache_dir=tmp_path, download=False)
    spec = REGISTRY["starry_night"]
    assert f"place the file at {tmp_path / 'starry_night.jpg'} (sha256 {spec.sha256})" in message
    assert spec.url in message


def test_corrupt_cache_is_reported_not_deleted(tmp_path, server):
    base, hits = server
    cached = tmp_path / "test.jpg"
    cached.write_bytes(b"something else")
    registry = registry_for(f"{base}/painting.jpg")
    message = failure(name="test", path=None, cache_dir=tmp_path, registry=registry)
    assert str(cached) in message and "corrupt" in message and "delete the file" in message
    assert cached.read_bytes() == b"something else"
    assert hits == []


def test_path_override_and_its_errors(tmp_path):
    own = tmp_path / "mine.png"
    own.write_bytes(b"x")  # content is checked later, by images.load_image
    assert resolve_style("anything", own, tmp_path / "cache") == own
    assert resolve_style(None, str(own), tmp_path / "cache") == own
    assert not (tmp_path / "cache").exists()
    missing = tmp_path / "nope.jpg"
    assert f"style.path={missing}: no such file" in failure(
        name=None, path=missing, cache_dir=tmp_path
    )
    assert "folder" in failure(name=None, path=tmp_path, cache_dir=tmp_path)


def test_unknown_or_missing_name_lists_the_known_ones(tmp_path):
    message = failure(name="mona_lisa", path=None, cache_dir=tmp_path)
    assert "'mona_lisa'" in message and "style.path=/path/to/painting.jpg" in message
    assert all(name in message for name in REGISTRY)
    assert "starry_night" in failure(name=None, path=None, cache_dir=tmp_path)


def test_spec_validation():
    assert StyleSpec("a", "A", "http://x/a.jpg", "AB" * 32).sha256 == "ab" * 32
    assert StyleSpec("a", "A", "http://x/a.jpg", "ab" * 32).filename == "a.jpg"
    with pytest.raises(ValueError, match="64 hex"):
        StyleSpec("a", "A", "http://x/a.jpg", "abc")
    with pytest.raises(ValueError, match="bare name"):
        StyleSpec("a", "A", "http://x/a.jpg", "ab" * 32, filename="../a.jpg")


def test_sha256_file(tmp_path):
    (tmp_path / "p.jpg").write_bytes(PAINTING)
    assert sha256_file(tmp_path / "p.jpg") == PAINTING_SHA


def test_registry_is_pinned_and_matches_the_configs():
    assert set(REGISTRY) == {
        "starry_night",
        "the_scream",
        "great_wave",
        "composition_vii",
        "shipwreck_of_the_minotaur",
    }
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.filename == f"{name}.jpg" and spec.title
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/", spec.url)
    configs = sorted(CONFIGS.glob("*.yaml"))
    assert len(configs) == len(REGISTRY)
    for config in configs:
        cfg = OmegaConf.load(config)
        assert cfg.name == config.stem and cfg.name in REGISTRY
        assert set(cfg) == {"name"}  # the painting's size and path: the schema's defaults
