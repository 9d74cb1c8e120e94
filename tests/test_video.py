"""Video input: frame by frame, written with the source's frame rate and frame count; audio is
dropped and said so; a broken video fails alone and leaves nothing behind."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_checkpoint, write_photo

from gan_stylizer.commands.stylize import run
from gan_stylizer.config.schema import StylizeConfig
from gan_stylizer.errors import ConfigError
from gan_stylizer.inference.video import stylize_video

av = pytest.importorskip("av")


def write_video(
    path: Path,
    frames: int = 8,
    size: tuple[int, int] = (64, 48),
    rate: Fraction | int = 12,
    codec: str = "libx264",
    audio: bool = False,
) -> Path:
    """A moving bar on a changing background, optionally with a silent audio track."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=16000) if audio else None
        for i in range(frames):
            pixels = np.full((height, width, 3), (i * 25, 80, 200 - i * 20), np.uint8)
            pixels[:, i * 4 : i * 4 + 8, 1] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            if sound is not None:
                samples = av.AudioFrame.from_ndarray(
                    np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
                )
                samples.sample_rate, samples.pts = 16000, i * 1024
                container.mux(sound.encode(samples))
        container.mux(stream.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))
    return path


def probe(path: Path) -> tuple[int, Fraction, tuple[int, int], int, np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return (
            len(frames),
            stream.average_rate,
            (stream.width, stream.height),
            len(container.streams.audio),
            frames[0],
        )


@pytest.fixture
def ckpt(tmp_path):
    return write_checkpoint(tmp_path / "run" / "last.ckpt", channels=4, name="tiny")


def test_video_is_stylized_frame_by_frame_at_the_source_rate(tmp_path, ckpt, capsys):
    clip = write_video(tmp_path / "clip.mp4", frames=9, audio=True)
    assert run(StylizeConfig(input=str(clip), ckpt=str(ckpt), batch_size=4)) == 0
    out = tmp_path / "clip_tiny-gan.mp4"
    frames, rate, size, audio_tracks, first = probe(out)
    assert (frames, rate, size, audio_tracks) == (9, 12, (64, 48), 0)
    source_first = probe(clip)[4]
    assert np.abs(first.astype(int) - source_first).mean() > 10  # stylized, not copied
    printed = capsys.readouterr().out
    assert "9 frames at 12 fps, audio dropped" in printed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_webm_keeps_a_fractional_rate_and_size_applies(tmp_path, ckpt):
    clip = write_video(tmp_path / "clip.webm", frames=5, rate=Fraction(25, 2), codec="libvpx-vp9")
    out = tmp_path / "styled" / "x.webm"
    assert run(StylizeConfig(input=str(clip), ckpt=str(ckpt), output=str(out), size=32)) == 0
    frames, rate, size, _, _ = probe(out)
    assert (frames, rate, size) == (5, Fraction(25, 2), (32, 24))


def test_existing_video_output_is_kept(tmp_path, ckpt, capsys):
    clip = write_video(tmp_path / "clip.mov", frames=2)
    out = tmp_path / "out.mov"
    out.write_bytes(b"keep me")
    assert run(StylizeConfig(input=str(clip), ckpt=str(ckpt), output=str(out))) == 0
    assert out.read_bytes() == b"keep me" and "skipped 1" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="video file"):
        run(StylizeConfig(input=str(clip), ckpt=str(ckpt), output=str(tmp_path / "x.png")))
    with pytest.raises(ConfigError, match="ckpt"):
        run(StylizeConfig(input=str(clip)))


def test_videos_inside_folders_and_globs_are_mirrored_beside_the_images(tmp_path, ckpt, capsys):
    root = tmp_path / "library"
    write_photo(root / "a.png", (40, 30), seed=0)
    (root / "trips").mkdir()
    write_video(root / "trips" / "clip.mp4", frames=3)
    write_video(root / "trips" / "clip.mov", frames=2)
    out = tmp_path / "out"
    assert run(StylizeConfig(input=str(root), ckpt=str(ckpt), output=str(out))) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "trips/clip.mov", "trips/clip.mp4"]
    assert probe(out / "trips" / "clip.mp4")[:3] == (3, 12, (64, 48))
    assert "done 3, skipped 0, failed 0" in capsys.readouterr().out
    # Run again: nothing is overwritten; a glob takes the videos too.
    assert run(StylizeConfig(input=str(root), ckpt=str(ckpt), output=str(out))) == 0
    assert "done 0, skipped 3, failed 0" in capsys.readouterr().out
    globbed = tmp_path / "globbed"
    pattern = str(root / "**" / "clip.*")
    assert run(StylizeConfig(input=pattern, ckpt=str(ckpt), output=str(globbed))) == 0
    assert sorted(p.name for p in globbed.iterdir()) == ["clip.mov", "clip.mp4"]


def test_a_glob_of_videos(tmp_path, ckpt):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(clips / "a.mp4", frames=2)
    write_video(clips / "b.mp4", frames=2)
    out = tmp_path / "out"
    assert run(StylizeConfig(input=str(clips / "*.mp4"), ckpt=str(ckpt), output=str(out))) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]
    # A glob that matches one video: a video beside it, as for that file given by name.
    assert run(StylizeConfig(input=str(clips / "a*"), ckpt=str(ckpt))) == 0
    assert probe(clips / "a_tiny-gan.mp4")[0] == 2


def test_the_optimization_skips_videos_in_a_folder_with_a_reason(tmp_path, capsys, monkeypatch):
    import gan_stylizer.commands.stylize as stylize_module

    root = tmp_path / "library"
    write_photo(root / "a.png", (24, 16), seed=0)
    write_video(root / "clip.mp4", frames=2)
    optimized = []

    def fake_optimization(cfg, device):
        def apply(content):
            optimized.append(content.shape)
            return content

        return stylize_module.Method(apply, "opt", False, False, "test")

    monkeypatch.setattr(stylize_module, "_optimization", fake_optimization)
    out = tmp_path / "out"
    assert run(StylizeConfig(input=str(root), output=str(out))) == 0
    assert len(optimized) == 1 and sorted(p.name for p in out.iterdir()) == ["a.png"]
    printed = capsys.readouterr().out
    assert f"skip: {root / 'clip.mp4'} is a video; videos need ckpt=" in printed


def test_broken_video_fails_alone_and_leaves_nothing(tmp_path, ckpt, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    assert run(StylizeConfig(input=str(bad), ckpt=str(ckpt))) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.mp4" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "run"]


def test_a_failure_mid_video_leaves_no_partial_file(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=6)
    calls = []

    def apply(frames: torch.Tensor) -> torch.Tensor:
        calls.append(len(frames))
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return 1 - frames

    with pytest.raises(RuntimeError, match="out of memory"):
        stylize_video(clip, tmp_path / "out.mp4", apply, batch_size=2)
    assert calls == [2, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_large_frames_are_batched_only_up_to_the_pixel_budget():
    from gan_stylizer.inference.onepass import BATCH_PIXELS
    from gan_stylizer.inference.video import _batches

    small = [torch.zeros(1, 3, 8, 8)] * 5
    assert [len(b) for b in _batches(iter(small), 2)] == [2, 2, 1]
    side = math.isqrt(BATCH_PIXELS // 2)  # two fit, three do not
    large = [torch.zeros(1, 3, side, side)] * 5
    assert [len(b) for b in _batches(iter(large), 4)] == [2, 2, 1]
    huge = [torch.zeros(1, 3, 2 * side, 2 * side)] * 2
    assert [len(b) for b in _batches(iter(huge), 4)] == [1, 1]
