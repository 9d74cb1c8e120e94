"""What the entry points share: turn expected failures into one line and a non-zero exit."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from omegaconf.errors import OmegaConfBaseException

from gan_stylizer.errors import CheckpointError, ConfigError, ImageError, StyleError, display_path
from gan_stylizer.models.vgg import VGGWeightsError

EXPECTED = (
    ConfigError,
    ImageError,
    StyleError,
    VGGWeightsError,
    CheckpointError,
    FloatingPointError,
)


@contextlib.contextmanager
def fail_cleanly() -> Iterator[None]:
    """Expected errors -> 'error: <one line>' on stderr and exit 2 (1 for a diverged run or a
    checkpoint that could not be written: errors of the run, not of its options)."""
    try:
        yield
    except EXPECTED as err:
        print(f"error: {display_path(str(err))}", file=sys.stderr)  # one line, whatever it names
        raise SystemExit(getattr(err, "exit_code", 2)) from None
    except OSError as err:  # a path the file system refuses (name too long, I/O error...)
        named = isinstance(err.filename, str | bytes | os.PathLike)
        where = f"{display_path(err.filename)}: " if named else ""
        print(f"error: {where}{display_path(str(err.strerror or err))}", file=sys.stderr)
        raise SystemExit(1) from None
    except OmegaConfBaseException as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        key = getattr(err, "full_key", None)
        print(f"error: config{f' key {key}' if key else ''}: {first}", file=sys.stderr)
        raise SystemExit(2) from None
    except RuntimeError as err:
        # Only training can diverge; importing gan_stylizer.system here would load Lightning
        # (and torchvision: about 250 MB) into stylize.py, which needs neither.
        system = sys.modules.get("gan_stylizer.system")
        if system is None or not isinstance(err, system.TrainingDiverged):
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
