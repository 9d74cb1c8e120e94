"""The stylize pipeline over many files: photos decoded ahead in threads, stylized in batches
of equal size, encoded and written behind; videos frame by frame; one line per input.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from gan_stylizer.errors import ImageError, display_path, reason
from gan_stylizer.inference.methods import Method, _recolor
from gan_stylizer.inference.onepass import batch_limit
from gan_stylizer.inference.video import VideoError, stylize_video
from gan_stylizer.io.images import (
    check_output_size,
    pil_to_tensor,
    read_rgb,
    resize_pil,
    save_image,
    tensor_to_pil,
)


@dataclass
class Tally:
    """Counts, and one line per input: results on stdout, errors on stderr (above any bar).
    Lines go through display_path: a non-UTF-8 file name must not crash a strict stdout."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    bar: tqdm | None = field(default=None, repr=False)

    def ok(self, line: str) -> None:
        self.done += 1
        tqdm.write(display_path(line), file=sys.stdout)
        self._advance()

    def skip(self, line: str) -> None:
        self.skipped += 1
        tqdm.write(display_path(line), file=sys.stdout)

    def fail(self, line: str) -> None:
        self.failed += 1
        tqdm.write(display_path(line), file=sys.stderr)
        self._advance()

    def _advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _run_video(pair: tuple[Path, Path], method: Method, cfg, size, tally: Tally) -> None:
    src, dst = pair
    with tqdm(desc=src.name, unit="frame", disable=None, file=sys.stderr, leave=False) as bar:
        try:
            result = stylize_video(
                src,
                dst,
                method.apply,
                size=size,
                scale=cfg.scale,
                batch_size=cfg.batch_size,
                transform=_recolor if method.recolor else None,
                progress=bar.update,
            )
        except VideoError as err:
            tally.fail(f"error: {err}")
            return
        except RuntimeError as err:  # out of memory
            tally.fail(f"error: {src}: could not stylize: {reason(err)} (try a smaller size=)")
            return
    audio = ", audio dropped" if result.had_audio else ""
    tally.ok(
        f"{src} -> {dst} ({result.width}x{result.height}, {result.frames} frames at "
        f"{float(result.rate):.3g} fps{audio}, {result.seconds:.2f} s)"
    )


def _run_images(
    todo: list[tuple[Path, Path]],
    apply: Callable[[torch.Tensor], torch.Tensor],
    size: int | None,
    scale: float | None,
    batch_size: int,
    recolor: Callable | None,
    tally: Tally,
) -> None:
    """Decode ahead (2 threads), stylize in batches of equal-size images, encode behind
    (1 thread); one line per input, in input order."""
    with (
        ThreadPoolExecutor(2, thread_name_prefix="decode") as readers,
        ThreadPoolExecutor(1, thread_name_prefix="encode") as writers,
        tqdm(total=len(todo), unit="img", disable=None, file=sys.stderr, leave=False) as bar,
    ):
        tally.bar = bar
        # Decoded 8-bit pictures in flight: at most batch_size (a 4K photo is 25 MB so).
        loads = _prefetch(readers, todo, size, scale, ahead=batch_size)
        lines: deque = deque()  # (future of the write or None, line if it succeeds or fails)
        for batch in _batches(loads, batch_size):
            if isinstance(batch, str):  # a file that could not be read
                lines.append((None, batch))
                continue
            contents = batch[0][2] if len(batch) == 1 else torch.cat([c for _, _, c in batch])
            start = time.perf_counter()
            try:
                stylized = apply(contents)
                if recolor is not None:
                    stylized = recolor(contents, stylized)
            except (RuntimeError, FloatingPointError) as err:  # out of memory, diverged
                for src, _, _ in batch:
                    why = f"could not stylize: {reason(err)} (try a smaller size=)"
                    lines.append((None, f"error: {src}: {why}"))
                continue
            seconds = (time.perf_counter() - start) / len(batch)
            sources = [(src, dst) for src, dst, _ in batch]
            del contents, batch  # a 4K photo is 100 MB as floats: keep only what is needed
            for (src, dst), image in zip(sources, stylized, strict=True):
                try:
                    picture = tensor_to_pil(image)  # encoded from 8 bits: 1/4 of the memory
                except ValueError as err:  # NaN from a diverged network
                    lines.append((None, f"error: {dst}: nothing written: {err}"))
                    continue
                w, h = picture.size
                line = f"{src} -> {dst} ({w}x{h}, {seconds:.2f} s)"
                lines.append((writers.submit(save_image, picture, dst), line))
            del stylized
            while lines and (lines[0][0] is None or lines[0][0].done() or len(lines) > 8):
                _report(*lines.popleft(), tally)
        while lines:
            _report(*lines.popleft(), tally)
        tally.bar = None


def _read(src: Path, size: int | None, scale: float | None):
    picture = read_rgb(src)
    check_output_size(src, *picture.size, size, scale)
    return resize_pil(picture, size, scale)


def _prefetch(pool, todo, size, scale, ahead: int) -> Iterator[tuple[Path, Path, Future]]:
    """(src, dst, future of the decoded 8-bit picture), keeping `ahead` decodes in flight."""
    pending: deque = deque()
    for src, dst in todo:
        pending.append((src, dst, pool.submit(_read, src, size, scale)))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def _batches(loads, batch_size: int) -> Iterator[list | str]:
    """Consecutive decoded images of equal size, at most batch_size and BATCH_PIXELS in
    all (a large photo runs alone), as [(src, dst, content)]; an unreadable file as its line."""
    batch: list = []
    for src, dst, future in loads:
        try:
            content = pil_to_tensor(future.result())
        except (ImageError, MemoryError) as err:
            if batch:  # the photos before it first: lines stay in input order
                yield batch
                batch = []
            if isinstance(err, MemoryError):
                yield f"error: {src}: not enough memory to decode this image"
            else:
                yield f"error: {err}"
            continue
        pixels = content.shape[-2] * content.shape[-1]
        if batch and (
            content.shape != batch[0][2].shape or len(batch) >= batch_limit(pixels, batch_size)
        ):
            yield batch
            batch = []
        batch.append((src, dst, content))
    if batch:
        yield batch


def _report(saved: Future | None, line: str, tally: Tally) -> None:
    """One input's line, once its write (if any) is done."""
    if saved is None:
        tally.fail(line)
        return
    try:
        saved.result()
    except ImageError as err:
        tally.fail(f"error: {err}")
        return
    tally.ok(line)
