"""The config reference, made from the schema (gan_stylizer.config.schema) so that it cannot
drift: every key of every command, its type, its default and the comment beside it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from pathlib import Path

from gan_stylizer.config import schema

COMMANDS = (
    ("train", "python train.py / gan-stylizer train", schema.TrainConfig),
    ("stylize", "python stylize.py / gan-stylizer stylize", schema.StylizeConfig),
    ("export", "python scripts/export.py / gan-stylizer export", schema.ExportConfig),
    ("evaluate", "python scripts/evaluate.py / gan-stylizer evaluate", schema.EvaluateConfig),
    ("serve", "python app.py / gan-stylizer serve", schema.ServeConfig),
)


def field_comments(cls: type) -> dict[str, str]:
    """name -> the comment on a field's line, or on the comment lines right above it."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):  # base classes first: a subclass may override
        if not dataclasses.is_dataclass(klass):
            continue
        lines = inspect.getsource(klass).splitlines()
        tree = ast.parse(inspect.getsource(klass))
        for node in tree.body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                line = lines[node.lineno - 1]
                above = []
                i = node.lineno - 2
                while i >= 0 and lines[i].strip().startswith("#"):
                    above.insert(0, lines[i].strip().lstrip("#").strip())
                    i -= 1
                inline = line.partition("  # ")[2].strip() if "  # " in line else ""
                text = " ".join(part for part in (*above, inline) if part)
                comments[node.target.id] = text or comments.get(node.target.id, "")
    return comments


def _type_name(tp) -> str:
    text = str(tp) if not isinstance(tp, type) else tp.__name__
    return text.replace("typing.", "").replace("NoneType", "None").replace(" | ", " or ")


def _default(f: dataclasses.Field, owner) -> str:
    value = getattr(owner, f.name)
    if dataclasses.is_dataclass(value):
        return ""
    if isinstance(value, dict):
        items = (f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items())
        return ", ".join(items) or "{}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def rows(cls: type, owner=None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for every leaf key of a schema instance, in order."""
    owner = cls() if owner is None else owner
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        value = getattr(owner, f.name)
        if dataclasses.is_dataclass(value):
            out += rows(type(value), value, f"{prefix}{f.name}.")
        else:
            meaning = comments.get(f.name, "")
            out.append(
                (f"{prefix}{f.name}", _type_name(hints[f.name]), _default(f, owner), meaning)
            )
    return out


def markdown() -> str:
    out = [
        "# Config reference",
        "",
        "Generated from the schema (`src/gan_stylizer/config/schema.py`) by "
        "`python scripts/config_reference.py`; a test checks that it is current. Every key is "
        "set on the command line as `key=value` (Hydra's override syntax). A key that is not "
        "listed for a command is refused, with the closest keys suggested. Groups (`style=`, "
        "`data=`, `model=`, `experiment=`, `debug=`) set several keys at once from "
        "`src/gan_stylizer/configs/`.",
        "",
    ]
    for name, usage, cls in COMMANDS:
        table = rows(cls)
        out += [f"## {name}", "", f"`{usage}`: {len(table)} keys.", ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, tp, default, meaning in table:
            shown = f"`{default}`" if default else ""
            out.append(f"| `{key}` | {tp} | {shown} | {meaning.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def write(path: str | Path) -> Path:
    path = Path(path)
    path.write_text(markdown(), encoding="utf-8")
    return path
