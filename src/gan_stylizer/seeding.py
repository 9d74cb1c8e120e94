"""Random streams derived from the run's seed, for everything drawn during training.

Each draw that matters for resuming (which photo, which crop, which painting crop for D) gets
its own generator seeded by (seed, purpose, position), instead of drawing from torch's global
RNG. The draws are then a pure function of the seed and the step: the same on a resumed run as
on an uninterrupted one, the same for any number of DataLoader workers, and different per rank
where the rank is part of the key. Nothing needs an RNG state saved in a checkpoint.
"""

from __future__ import annotations

import hashlib

import torch


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from `parts` (ints and strings): distinct parts give independent streams."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def seeded_generator(*parts: int | str) -> torch.Generator:
    """A CPU torch.Generator seeded with derived_seed(*parts)."""
    return torch.Generator().manual_seed(derived_seed(*parts))
