"""Atomic writes: a hidden temporary file beside the target, fsync, rename; a crash or a full
disk never leaves a half-written file, and an existing file stays intact until replaced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def create_temp(target: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new hidden file `.<name>.<random>.tmp` beside target: (fd, path).

    os.open with mode 0o666 lets the umask set the permissions, as a plain open() would;
    tempfile's 0o600 would make every output private to its owner after the rename.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = target.parent / f".{target.name[:100]}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(name, flags, 0o666), str(name)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {target.parent}")


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; best effort (not possible on every OS/filesystem)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """The one atomic writer: write(file) fills a temporary file beside `path`, which is
    fsynced and renamed over it; on any failure (a full disk, Ctrl-C) the temporary file is
    removed and an existing `path` is left as it was. Raises OSError naming `path`."""
    target = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = create_temp(target)
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        tmp = None
        fsync_dir(target.parent)
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(target)) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """`data` to `path`, atomically (write_with)."""
    return write_with(path, lambda out: out.write(data))


def write_text(path: str | os.PathLike[str], text: str, errors: str = "strict") -> Path:
    """`text` as UTF-8 to `path`, atomically (write_with)."""
    return write_bytes(path, text.encode("utf-8", errors))
