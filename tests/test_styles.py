"""Style registry: pinned, verified, downloaded once and atomically, clear errors offline."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gan_stylizer.styles import REGISTRY, StyleError, StyleSpec, resolve_style

PAINTING = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes with a known hash"
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "style"


@pytest.fixture
def server():
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            if self.path == "/painting.jpg":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAINTING)))
                self.end_headers()
                self.wfile.write(PAINTING)
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


def spec(url: str, sha: str | None = None) -> dict[str, StyleSpec]:
    return {"test": StyleSpec("test", "Test", url, sha or hashlib.sha256(PAINTING).hexdigest())}


def test_download_verifies_caches_and_is_not_repeated(tmp_path, server):
    base, hits = server
    registry = spec(f"{base}/painting.jpg")
    path = resolve_style("test", None, tmp_path, registry=registry)
    assert path == tmp_path / "test.jpg" and path.read_bytes() == PAINTING
    assert resolve_style("test", None, tmp_path, registry=registry) == path
    assert hits == ["/painting.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.jpg"]


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, server):
    base, _ = server
    with pytest.raises(StyleError, match="expected"):
        resolve_style("test", None, tmp_path, registry=spec(f"{base}/painting.jpg", "0" * 64))
    assert list(tmp_path.iterdir()) == []


def test_failed_download_says_where_to_put_the_file(tmp_path, server):
    base, _ = server
    with pytest.raises(StyleError) as info:
        resolve_style("test", None, tmp_path, registry=spec(f"{base}/missing.jpg"))
    assert str(tmp_path / "test.jpg") in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_offline_and_missing(tmp_path):
    with pytest.raises(StyleError, match=re.escape(str(tmp_path / "starry_night.jpg"))):
        resolve_style("starry_night", None, tmp_path, download=False)


def test_corrupt_cache_is_reported_not_deleted(tmp_path):
    cached = tmp_path / "starry_night.jpg"
    cached.write_bytes(b"something else")
    with pytest.raises(StyleError, match="delete the file"):
        resolve_style("starry_night", None, tmp_path)
    assert cached.read_bytes() == b"something else"


def test_path_override_and_unknown_names(tmp_path):
    own = tmp_path / "mine.png"
    own.write_bytes(b"x")
    assert resolve_style("anything", own, tmp_path / "cache") == own
    with pytest.raises(StyleError, match="no such file"):
        resolve_style(None, tmp_path / "nope.jpg", tmp_path)
    with pytest.raises(StyleError, match="starry_night.*style.path"):
        resolve_style("mona_lisa", None, tmp_path)


def test_registry_is_pinned_and_matches_the_configs():
    assert set(REGISTRY) == {
        "starry_night",
        "the_scream",
        "great_wave",
        "composition_vii",
        "shipwreck_of_the_minotaur",
    }
    for s in REGISTRY.values():
        assert re.fullmatch(r"[0-9a-f]{64}", s.sha256)
        assert re.search(r"/[0-9a-f]{40}/", s.url), s.url
    names = {OmegaConf.load(p).name for p in CONFIGS.glob("*.yaml")}
    assert names == set(REGISTRY)
