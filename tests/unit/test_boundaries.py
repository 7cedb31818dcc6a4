"""The module boundaries the design keeps (issue 12): narrow doors, no private reaches.

- mwan/web sees the daemon only through mwan.daemon.door.Door: it never imports
  mwan.daemon.core;
- no module imports another module's private names or reads another
  object's private attributes (``x._name`` with x other than self/cls).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mwan"


def modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))]


def test_web_does_not_import_the_daemon_core() -> None:
    bad = []
    for path, tree in modules():
        if path.parent.name != "web":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.endswith("daemon.core"):
                bad.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name.endswith("daemon.core")
                                                    for a in node.names):
                bad.append(f"{path.name}:{node.lineno}")
    assert not bad, bad


def test_no_module_reaches_for_private_names() -> None:
    bad = []
    for path, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                bad += [f"{path}:{node.lineno}: imports {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                    not node.attr.startswith("__"):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                bad.append(f"{path}:{node.lineno}: .{node.attr} of {ast.unparse(node.value)}")
    assert not bad, "\n".join(bad)
