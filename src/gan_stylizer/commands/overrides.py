"""The command line before Hydra sees it: every key=value names a key of the command's schema
(or a config group, or hydra.*), or the command stops with one line that names the key and the
closest ones, and exit status 2, before any work. Values Hydra's grammar cannot read as given
(a file name with '=', ',', quotes or brackets) get a line that shows how to quote them."""

from __future__ import annotations

import difflib
import os
import sys
from importlib import resources

from gan_stylizer.config.reference import rows
from gan_stylizer.io.names import component_problem


def groups(names: tuple[str, ...]) -> dict[str, list[str]]:
    """Each config group's options (the YAML files in gan_stylizer/configs/<group>/)."""
    root = resources.files("gan_stylizer") / "configs"
    out = {}
    for name in names:
        folder = root / name
        out[name] = sorted(
            p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
        )
    return out


def problem(argv: list[str], schema: type, group_names: tuple[str, ...] = ()) -> str | None:
    """The first argument that names no key of `schema`, as one line; None if all do."""
    table = rows(schema)
    known = [key for key, *_ in table]
    free = [key for key, tp, *_ in table if tp.startswith("dict")]  # loss.style_layers.<any>
    options = groups(group_names)
    for arg in argv:
        if arg.startswith("-"):  # Hydra's own flags: --help, -m, --cfg job, ...
            continue
        key, sep, value = arg.partition("=")
        if not sep:
            continue  # Hydra explains a bare word itself
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key.startswith("hydra/") or key == "hydra":
            continue
        if key in options:
            choices = options[key]
            plain = value.strip()
            if plain and plain not in choices and plain != "null" and "," not in plain:
                close = difflib.get_close_matches(plain, choices, n=3, cutoff=0.5)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                return f"{key}={value}: no such {key} (one of: {', '.join(choices)}){hint}"
            continue
        if key in known or any(key.startswith(f"{k}.") for k in free):
            continue
        close = difflib.get_close_matches(key, [*known, *options], n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return f"unknown key {key!r}{hint} (every key: docs/config.md, or --help)"
    return None


def reserved(argv: list[str], path_keys: tuple[str, ...]) -> str | None:
    """An argument that Hydra's override grammar cannot read, as one line; for a file name
    (a key of path_keys), the line shows how to quote it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("-"):
            continue
        try:
            (override,) = parser.parse_overrides([arg])
            # a,b is a sweep in Hydra's grammar: in a file name, it is a comma
            unreadable = key in path_keys and override.is_sweep_override()
            err = None
        except HydraException as caught:
            unreadable, err = True, caught
        if unreadable:
            if key in path_keys:
                escaped = value.replace("\\", "\\\\").replace("'", "\\'")
                return (
                    f"{key}={value}: this file name has characters that Hydra's command line "
                    f"reserves; quote the value inside the argument: \"{key}='{escaped}'\""
                )
            text = str(err).strip()
            first = text.splitlines()[0] if text else type(err).__name__
            return f"{arg}: cannot be read ({first})"
    return None


def help_text(usage: str, about: str, schema: type, group_names: tuple[str, ...]) -> str:
    """--help: a usage line, what the command does, then its own keys (from the schema) with
    their defaults and meanings, and its config groups with their options."""
    lines = [f"usage: {usage}", "", about, "", "keys (key=value; every one: docs/config.md):"]
    table = rows(schema)
    width = min(34, max(len(key) for key, *_ in table))
    for key, tp, default, meaning in table:
        shown = f" [default: {default}]" if default else ""
        lines.append(f"  {key:<{width}} {meaning or tp}{shown}")
    if group_names:
        lines += ["", "groups (group=option):"]
        for name, options in groups(group_names).items():
            lines.append(f"  {name:<{width}} {', '.join(options)}")
    lines += [
        "",
        "A file name with = , ' \" [ ] or spaces: quote it inside the argument, e.g.",
        "  \"input='a=b.jpg'\"",
    ]
    return "\n".join(lines)


def register(
    command: str, schema: type, group_names: tuple[str, ...], usage: str, about: str
) -> None:
    """Hydra's config store: the command's schema (`<command>_schema`, the first entry of its
    YAML's defaults) and its help, hydra/help=<command>, whose template Hydra prints for
    --help: a usage line, what the command does, its own keys from the schema."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=f"{command}_schema", node=schema)
    text = help_text(usage, about, schema, group_names) + "\n"
    # Hydra fills the template with string.Template ($NAME) after OmegaConf resolved it (${..}).
    template = text.replace("$", "$$").replace("$${", "$\\${")
    node = {"app_name": command, "header": "", "footer": "", "template": template}
    store.store(group="hydra/help", name=command, node=node)


def mistyped(argv: list[str], schema: type, group_names: tuple[str, ...]) -> str | None:
    """A value the schema's type refuses (size=abc, overwrite=0.5, style.size=1e309), as one
    line: each override merged alone into the schema by OmegaConf, as Hydra would merge it,
    but without Hydra's several lines and exit status 1."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    base = OmegaConf.structured(schema)
    for arg in argv:
        key, sep, _ = arg.partition("=")
        if not sep or arg.startswith(("-", "+", "~")) or key.startswith("hydra"):
            continue
        if key in group_names:
            continue
        try:
            (override,) = parser.parse_overrides([arg])
            if override.is_sweep_override():
                continue  # -m a,b: each value is merged by Hydra in its own job
            value = override.value()
            if isinstance(value, str) and "${" in value:
                continue  # an interpolation: resolved (and checked) later
            OmegaConf.update(OmegaConf.create(base), key, value, merge=True)
        except HydraException:
            continue  # reserved() explains what the grammar cannot read
        except OmegaConfBaseException as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            return f"{arg}: {lines[0] if lines else type(err).__name__}"
    return None


def unsafe_name(argv: list[str], name_keys: tuple[str, ...]) -> str | None:
    """A value of name_keys (a run's name: Hydra makes a folder of it before any of our code
    runs) that is not one safe path component, as one line."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in name_keys:
            why = component_problem(value.strip().strip("'\""))
            if why:
                return f"{key}={value!r}: becomes a folder name, and {why}"
    return None


def check(
    argv: list[str],
    schema: type,
    group_names: tuple[str, ...],
    path_keys: tuple[str, ...],
    name_keys: tuple[str, ...] = (),
) -> None:
    """An unknown key, an unquoted reserved value or an unsafe name: one line and exit status 2.
    Otherwise nothing: Hydra takes over (and prints the help that register() gave it)."""
    if any(arg in ("-h", "--help") for arg in argv):
        return
    line = (
        problem(argv, schema, group_names)
        or reserved(argv, path_keys)
        or mistyped(argv, schema, group_names)
        or unsafe_name(argv, name_keys)
    )
    if line:
        print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2)


def run_hydra(hydra_main) -> None:
    """Hydra's main; `--help | head` closes the pipe early, which is no error: the reader has
    what it wanted."""
    try:
        hydra_main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
