"""The registry (ltlab.optim.OPTIMIZERS) is the one list of methods: outside ltlab/optim/, a method's name appears
in code only where a preset chooses a method (the config's defaults, the playground lesson's preset, LESSON);
docs, comments and docstrings may name any. Everything else reads the registry or the runs it finds."""
from __future__ import annotations

import ast
from pathlib import Path

from ltlab.optim import OPTIMIZERS

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {("config.py", "OptimizerConfig"), ("playground.py", "LESSON")}  # presets that choose a method


def _named(tree: ast.AST):
    """(enclosing class or assigned name, line, value) of every string constant equal to a registry name."""
    def walk(node, owner):
        if isinstance(node, ast.ClassDef):
            owner = node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            owner = node.targets[0].id
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in OPTIMIZERS:
            yield owner, node.lineno, node.value
        for child in ast.iter_child_nodes(node):
            yield from walk(child, owner)
    yield from walk(tree, None)


def test_method_names_live_in_the_registry():
    found = []
    for path in sorted((ROOT / "ltlab").rglob("*.py")):
        rel = path.relative_to(ROOT / "ltlab")
        if rel.parts[0] == "optim":
            continue
        for owner, line, name in _named(ast.parse(path.read_text())):
            if (str(rel), owner) not in ALLOWED:
                found.append(f"ltlab/{rel}:{line} {name!r} (in {owner})")
    assert not found, "method names outside the registry:\n" + "\n".join(found)


def test_the_check_finds_a_name():
    tree = ast.parse("def f():\n    return color('gnm')\nLESSON = {'sam': 1}\n")
    assert [(o, v) for o, _, v in _named(tree)] == [(None, "gnm"), ("LESSON", "sam")]
