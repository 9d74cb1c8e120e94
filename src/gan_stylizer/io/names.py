"""Names that become parts of paths (a run's name, a painting's, a model's label): one safe
component, no separator, no `..`, no control characters. Refused when a user gives one
(check_component), made safe when read back from a file (safe_component): a checkpoint or an
export's JSON says what it likes, and what it says must not steer a write."""

from __future__ import annotations

import re

MAX_NAME = 100  # characters: with a suffix, well under the 255 bytes of most file systems
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def component_problem(name: str) -> str | None:
    """Why `name` cannot be one path component, or None."""
    if not name or not name.strip():
        return "is empty"
    if name in (".", "..") or name.startswith(".."):
        return "would leave its folder (..)"
    if _UNSAFE.search(name):
        return 'holds a separator, a control character or one of : * ? " < > |'
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    return None


def safe_component(name: object, fallback: str = "stylized") -> str:
    """`name` as one harmless path component: unsafe characters become _, leading dots go."""
    text = _UNSAFE.sub("_", str(name)).strip().lstrip(".")[:MAX_NAME].strip()
    return text or fallback
