from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


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
