"""Networks: torch only, no Lightning, no Hydra."""
