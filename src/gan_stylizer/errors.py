"""The errors that a user can act on, each one line naming the file or key and the problem,
and `reason()`, an exception as a short phrase for such a line.
"""

from __future__ import annotations

import os
import re


class ConfigError(ValueError):
    """A config value is unusable; the message names the key and what to do."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the problem."""


def display_path(path: str | os.PathLike[str]) -> str:
    """A path (or a line holding paths) as text that any terminal or UTF-8 file accepts: bytes
    of a file name that are not UTF-8 (kept by Python as lone surrogates, which print() and
    write_text() refuse under a strict UTF-8 locale) are shown as \\xNN escapes, and control
    characters (a newline in a file name would split a one-line report) as \\n, \\x1b..."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ImageError(Exception):
    """An image cannot be read or written; str() is one line, "<path>: <problem>"."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())  # Pillow messages may hold newlines
        super().__init__(f"{display_path(self.path)}: {self.problem}")

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, str]]:
        # Rebuild from (path, problem), not from the formatted message, when pickled (workers).
        return (type(self), (self.path, self.problem))


class StyleError(Exception):
    """A style cannot be resolved to a usable file; the message is one line saying what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def reason(err: BaseException) -> str:
    """An exception as a short phrase for one line of output: an OS error's own words
    ("No space left on device"), else its message on one line (at most 200 characters), else
    its type's name."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return " ".join(str(err).split())[:200] or type(err).__name__
