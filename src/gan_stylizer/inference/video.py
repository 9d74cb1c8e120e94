"""Video in and out, frame by frame, with PyAV (FFmpeg in a wheel: the `video` extra).

The output keeps the source's frame rate and frame count (constant rate: the source's average
rate) and has no audio track: audio is dropped, and a line says so when the source has any.
Codecs: H.264 (yuv420p, CRF 18) in .mp4, .mov and .mkv; VP9 (CRF 30) in .webm. yuv420p needs
even sizes, so an odd last row or column is cropped. The file is written to a temporary name
beside the target and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from gan_stylizer.errors import ImageError, reason
from gan_stylizer.inference.onepass import batch_limit
from gan_stylizer.io.images import check_output_size, pil_to_tensor, resize_pil, tensor_to_pil
from gan_stylizer.io.inputs import VIDEO_EXTENSIONS

# suffix -> (container format, video codec, codec options)
CONTAINERS: dict[str, tuple[str, str, dict[str, str]]] = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "medium"}),
    ".mov": ("mov", "libx264", {"crf": "18", "preset": "medium"}),
    ".mkv": ("matroska", "libx264", {"crf": "18", "preset": "medium"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "30", "b": "0"}),
}
assert frozenset(CONTAINERS) == VIDEO_EXTENSIONS, "every video suffix that is read is written"


class VideoError(ImageError):
    """A video cannot be read or written; str() is one line, "<path>: <problem>"."""


@dataclass
class VideoResult:
    frames: int
    rate: Fraction
    width: int
    height: int
    had_audio: bool
    seconds: float  # in the stylizer


def _av(path: str | os.PathLike[str]):
    try:
        import av
    except ImportError:
        raise VideoError(
            path, "video needs PyAV, which is not installed: pip install 'gan-stylizer[video]'"
        ) from None
    return av


def stylize_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    apply: Callable[[torch.Tensor], torch.Tensor],
    size: int | None = None,
    scale: float | None = None,
    batch_size: int = 4,
    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Stylize every frame of src with `apply` ([B, 3, H, W] in [0, 1] -> same) and write dst.

    Frames are resized like images (long side `size`, or times `scale`) and stylized
    `batch_size` at a time; `transform(content, stylized)` post-processes each batch (colour
    preservation); `progress(n)` is called with the number of frames done. Raises VideoError;
    then nothing is left at dst.
    """
    av = _av(src)
    dst = Path(dst)
    fmt, codec, options = CONTAINERS.get(dst.suffix.lower(), (None, None, None))
    if fmt is None:
        raise VideoError(dst, f"unknown video format {dst.suffix!r}; use {', '.join(CONTAINERS)}")
    try:
        source = av.open(os.fspath(src))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoError(src, f"not a readable video ({reason(err)})") from None
    with source:
        if not source.streams.video:
            raise VideoError(src, "holds no video stream")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoError(src, "the frame rate is unknown")
        had_audio = bool(source.streams.audio)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name[:100]}.{os.getpid()}.tmp{dst.suffix}")
        writer = None
        try:
            writer = _Writer(av, tmp, fmt, codec, options, Fraction(rate))
            seconds = 0.0
            for batch in _batches(_frames(av, source, stream, src, size, scale), batch_size):
                start = time.perf_counter()
                stylized = apply(batch)
                if transform is not None:
                    stylized = transform(batch, stylized)
                seconds += time.perf_counter() - start
                for frame in stylized:
                    writer.write(frame)
                if progress is not None:
                    progress(len(batch))
            if writer.count == 0:
                raise VideoError(src, "holds no frames")
            writer.close()
            promised = stream.frames or 0  # the container's count; 0 where it has none
            if writer.count < promised:
                # A cut or damaged file: what was decoded is kept, named so nobody takes it
                # for the whole video, and the run ends with status 1.
                partial = dst.with_name(f"{dst.stem}.partial{dst.suffix}")
                os.replace(tmp, partial)
                raise VideoError(
                    src,
                    f"its container promises {promised} frames but only {writer.count} could "
                    f"be decoded (a cut or damaged file?); those are kept as {partial}",
                )
            os.replace(tmp, dst)
        except (av.error.FFmpegError, OSError, ValueError) as err:  # a full disk included
            raise VideoError(src, f"could not convert into {dst}: {reason(err)}") from None
        finally:
            if writer is not None:
                writer.abort()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return VideoResult(
        writer.count, Fraction(rate), writer.width, writer.height, had_audio, seconds
    )


def _frames(av, source, stream, src, size, scale) -> Iterator[torch.Tensor]:
    """[1, 3, H, W] float frames, resized, cropped to even sizes."""
    index = 0
    try:
        for frame in source.decode(stream):
            if index == 0:
                try:
                    check_output_size(src, frame.width, frame.height, size, scale)
                except ImageError as err:
                    raise VideoError(src, err.problem) from None
            image = resize_pil(frame.to_image(), size, scale)
            width, height = image.size
            if width < 2 or height < 2:
                raise VideoError(src, f"frames of {width}x{height} px are too small to encode")
            if width % 2 or height % 2:
                image = image.crop((0, 0, width - width % 2, height - height % 2))
            yield pil_to_tensor(image)
            index += 1
    except av.error.FFmpegError as err:
        raise VideoError(src, f"corrupt video at frame {index} ({reason(err)})") from None


def _batches(frames: Iterator[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """Frames [1, 3, H, W] in batches of `size`, or fewer where `size` of them would hold more
    than BATCH_PIXELS (a large batch is slower per frame)."""
    batch: list[torch.Tensor] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= batch_limit(frame.shape[-2] * frame.shape[-1], size):
            yield torch.cat(batch)
            batch = []
    if batch:
        yield torch.cat(batch)


class _Writer:
    """Encodes frames into a container opened at the first frame (which fixes the size)."""

    def __init__(self, av, path: Path, fmt: str, codec: str, options: dict, rate: Fraction):
        self.av, self.path, self.fmt, self.codec, self.options = av, path, fmt, codec, options
        self.rate = rate
        self.container = self.stream = None
        self.count = self.width = self.height = 0

    def write(self, image: torch.Tensor) -> None:
        """One frame [3, H, W] in [0, 1]."""
        picture = tensor_to_pil(image)
        if self.container is None:
            self.width, self.height = picture.size
            self.container = self.av.open(os.fspath(self.path), "w", format=self.fmt)
            self.stream = self.container.add_stream(self.codec, rate=self.rate)
            self.stream.width, self.stream.height = self.width, self.height
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = dict(self.options)
        frame = self.av.VideoFrame.from_image(picture)
        frame.pts = self.count
        frame.time_base = 1 / self.rate
        self.container.mux(self.stream.encode(frame))
        self.count += 1

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode(None))  # flush the encoder's delayed frames
            self.container.close()
            self.container = None
            with open(self.path, "rb+") as f:
                os.fsync(f.fileno())

    def abort(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.close()
            self.container = None
