"""Hydra's composed config -> the typed schema instance (a typo or a wrong type fails here)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def to_dataclass(cfg: DictConfig | dict, schema: type) -> Any:
    """Compose-time DictConfig (or plain dict) -> validated schema instance."""
    merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
    return OmegaConf.to_object(merged)
