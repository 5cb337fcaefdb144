"""The parameter reference (``docs/parameters.md``), generated from the schema and ``conf/base``.

Every key of ``conf/base/parameters_*.yml`` with its value, its type (from the typed config that
checks it, :data:`~glta_pipelines.framework.parameters.SCHEMA`) and what it means: the comments
above it or beside it in the YAML file, else the comment on its field in the config dataclass.
``make docs`` rewrites the page; a test fails when the committed page is stale.

    python -m glta_pipelines.framework.parameter_reference conf/base docs/parameters.md
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

from glta_pipelines.core.files import atomic_path
from glta_pipelines.framework.parameters import SCHEMA

KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")
HEADER = """# Parameter reference

Generated from the parameter schema and `conf/base` by `make docs`; do not edit by hand. Every
key below can be changed in `conf/local/parameters.yml` (git-ignored) or on the command line:
`kedro run --params "pretrain_gnn.lightgcn.learning_rate=0.005"`. An unknown key or a value of the
wrong type stops the run before anything is written, naming the parameter.
"""


def yaml_comments(path: Path) -> dict[str, str]:
    """Dotted key -> the comment lines directly above it and the comment beside it, joined."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = KEY.match(line)
        if not match:
            pending = [] if not stripped else pending
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        dotted = ".".join(k for _, k in stack)
        inline = _inline_comment(match["rest"])
        found[dotted] = " ".join([*pending, *([inline] if inline else [])]).strip()
        pending = []
    return found


def _inline_comment(rest: str) -> str:
    quote = None
    for i, char in enumerate(rest):
        if char in "\"'" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or rest[i - 1] == " "):
            return rest[i + 1:].strip()
    return ""


def field_comments(cls: type) -> dict[str, str]:
    """Field -> the comment on its line, or the comment lines right above it, in the dataclass source."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    found, pending = {}, []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^\s+([a-z_][a-z0-9_]*): [^=]+=", line)
        if match:
            inline = _inline_comment(line.split("=", 1)[1])
            found[match[1]] = " ".join([*pending, *([inline] if inline else [])]).strip()
        pending = []
    return found


def _schema_at(path: list[str]) -> tuple[Any, str]:
    """(type, comment) of the field at ``path`` in the schema; (None, "") where the schema has none."""
    node: Any = SCHEMA
    owner, comment = None, ""
    for key in path:
        if isinstance(node, dict):
            node = node.get(key)
        elif dataclasses.is_dataclass(node):
            owner = node
            comment = field_comments(owner).get(key, "")
            node = typing.get_type_hints(owner).get(key)
        else:
            return None, ""
    return node, comment


def _type_name(kind: Any) -> str:
    if kind is None:
        return ""
    if isinstance(kind, dict) or dataclasses.is_dataclass(kind):
        return "section"
    text = kind.__name__ if isinstance(kind, type) else str(kind)
    return text.replace("typing.", "").replace("NoneType", "None")


def _leaves(value: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    if isinstance(value, dict) and value:
        return [leaf for key, sub in value.items() for leaf in _leaves(sub, [*path, key])]
    return [(path, value)]


def reference_entries(conf: Path) -> list[dict[str, str]]:
    """One entry per ``conf/base`` parameter key: key, file, value, type, explanation."""
    entries = []
    for path in sorted(conf.glob("parameters*.yml")):
        tree = yaml.safe_load(path.read_text()) or {}
        comments = yaml_comments(path)
        for keys, value in _leaves(tree, []):
            kind, field_comment = _schema_at(keys)
            dotted = ".".join(keys)
            # the key's own comment, else its section's (a list of similar keys documented once above them)
            explanation = comments.get(dotted) or field_comment
            entries.append({"key": dotted, "file": f"conf/base/{path.name}", "value": yaml.safe_dump(
                value, default_flow_style=True, width=1000).strip().removesuffix("...").strip(), "type": _type_name(kind),
                "explanation": explanation})
    return entries


def reference_markdown(conf: Path) -> str:
    """The whole page, grouped by file."""
    lines = [HEADER]
    current = None
    for entry in reference_entries(conf):
        if entry["file"] != current:
            current = entry["file"]
            lines += ["", f"## `{current}`", ""]
        kind = f" ({entry['type']})" if entry["type"] else ""
        lines.append(f"- **`{entry['key']}`** = `{entry['value']}`{kind}: {entry['explanation']}".rstrip(": "))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``[conf folder] [output file]``: the page to the file (written whole or not at all), or to stdout."""
    argv = sys.argv[1:] if argv is None else argv
    page = reference_markdown(Path(argv[0] if argv else "conf/base"))
    if len(argv) < 2:
        sys.stdout.write(page)
        return
    with atomic_path(Path(argv[1])) as tmp:
        Path(tmp).write_text(page)


if __name__ == "__main__":
    main()
