"""Atomic writes: a hidden temporary file beside the target, fsync, rename; a crash or a full
disk never leaves a half-written file, and an existing file stays intact until replaced.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def create_temp(target: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new hidden file `.<name>.<pid>-<random>.tmp` beside target: (fd, path). The pid lets
    a later run tell a killed writer's leftover from a live one's file (sweep).

    os.open with mode 0o666 lets the umask set the permissions, as a plain open() would;
    tempfile's 0o600 would make every output private to its owner after the rename.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = target.parent / f".{target.name[:100]}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"
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


# The temporary names our writers use: this module's (.<name>.<pid>-<hex>.tmp), a video's
# (.<name>.<pid>.tmp.<suffix>), a checkpoint's (.last.ckpt.tmp<pid>, .step.tmp<pid>).
# The patterns are exact (8 hex digits, a video suffix): a user's own hidden file is never taken
# for one.
_TEMP_NAMES = (
    re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$"),
    re.compile(r"^\..+\.(?P<pid>\d+)\.tmp\.(?:mp4|mov|mkv|webm)$"),
    re.compile(r"^\.(?:last\.ckpt|step)\.tmp(?P<pid>\d+)$"),
)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or not a pid: leave it
    return True


def sweep(folder: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files that a killed writer left in `folder` (its process is gone);
    one line per file removed, and per leftover that could not be."""
    lines = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return lines
    for entry in entries:
        match = next((m for p in _TEMP_NAMES if (m := p.match(entry.name))), None)
        if match is None or not entry.is_file() or _running(int(match["pid"])):
            continue
        try:
            entry.unlink()
            lines.append(f"removed {entry}: a temporary file left by an interrupted run")
        except OSError as err:
            lines.append(f"warning: {entry}: left by an interrupted run ({err.strerror})")
    return lines
