"""Plain data, as checkpoints and run records hold it: dataclass configs as dicts of numbers,
strings, lists and dicts (tuples as lists), so that every checkpoint loads with
torch.load(weights_only=True).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def to_plain(cfg: Any) -> dict:
    """Schema instance -> plain dict (tuples as lists), safe for weights_only checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(asdict(cfg))
