"""Project rules: one-way layering, dependency lists in sync, fast import, packaged files."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ltlab"

# data -> model -> objective -> optimizer -> trainer -> probes -> plots -> notebooks (+ glue at the top)
LAYER = {"errors": 0, "utils": 0, "config": 0, "data": 1, "models": 2, "losses": 3, "optim": 4, "playground": 5,
         "train": 5, "probes": 6, "plots": 7, "widgets": 8, "figures": 8, "probing": 8, "report": 8, "sweep": 8, "tables": 8, "stats": 0, "cli": 9, "__main__": 9, "__init__": 9}
# probes may use models and losses, never train; plots take plain results only (and the method registry's colours)
FORBIDDEN = {"probes": {"train", "optim"}, "plots": {"models", "train", "probes", "data", "losses"}}
# the one upward edge: config validates optimizer.method by the method's class (lazily imported), so the
# options and their defaults exist once, in the class's signature
ALLOWED_UP = {("config", "optim")}


def module_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def imported_ltlab_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg_parts = path.relative_to(ROOT).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg_parts[: len(pkg_parts) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
                if len(target) > 1:
                    out.add(target[1])
                else:
                    out.update(a.name for a in node.names)
            elif node.module and node.module.startswith("ltlab."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ltlab."):
                    out.add(a.name.split(".")[1])
    return out


def test_layering_is_one_way():
    problems = []
    for path in PKG.rglob("*.py"):
        me = module_of(path)
        if me == "__init__" and path.parent == PKG:
            continue
        for dep in imported_ltlab_modules(path):
            if dep not in LAYER or dep == me:
                continue
            if (LAYER[dep] > LAYER[me] and (me, dep) not in ALLOWED_UP) or dep in FORBIDDEN.get(me, set()):
                problems.append(f"{path.relative_to(ROOT)} imports ltlab.{dep}")
    assert not problems, problems


def _deps_pyproject() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    dev = re.search(r"dev = \[(.*?)\]", text, re.S).group(1)
    return {re.split(r"[<>=\[ ]", d.strip().strip('"'))[0].lower() for d in (block + "," + dev).split(",") if d.strip()}


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    names = {re.split(r"[<>= ]", p)[0].lower() for p in pip if not p.startswith("-")}
    assert names == _deps_pyproject()


def test_import_is_lazy():
    # no timing threshold (shared machines are noisy): importing ltlab must not import torch or timm
    code = "import sys; import ltlab; print('torch' in sys.modules, 'timm' in sys.modules, ltlab.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["False", "False"]


def test_bundled_weights_are_small_and_documented():
    w = PKG / "models" / "weights" / "ltlab_tiny_vit.pt"
    assert w.exists() and w.stat().st_size < 5 * 2**20
    rec = yaml.safe_load(w.with_suffix(".yaml").read_text())
    assert rec["command"].startswith("python -m ltlab pretrain") and 0 < rec["source_test_accuracy"] <= 1
    assert f"--texture-weight {rec['texture_weight']}" in rec["command"]  # how the patch tokens were trained


def test_readme_has_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


def test_no_method_name_in_the_code_under_train():
    """The trainer knows no method: no registered method's name in an identifier or a string literal under
    ltlab/train/ (docstrings and comments may explain; the base optimizers and LPT, a model, are not methods)."""
    from ltlab.optim import OPTIMIZERS

    methods = [n for n, info in OPTIMIZERS.items() if info.base is None]
    pattern = re.compile(r"(?<![a-z])(" + "|".join(methods) + r")(?![a-z])")
    found = []
    for path in sorted((PKG / "train").glob("*.py")):
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            texts = []
            if isinstance(node, ast.Name):
                texts = [node.id]
            elif isinstance(node, ast.Attribute):
                texts = [node.attr]
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                texts = [node.name]
            elif isinstance(node, ast.arg):
                texts = [node.arg]
            elif isinstance(node, ast.alias):
                texts = [node.name, node.asname or ""]
            elif isinstance(node, ast.keyword) and node.arg:
                texts = [node.arg]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                texts = [node.value]
            found += [f"{path.name}:{node.lineno}: {t!r}" for t in texts if pattern.search(t.lower())]
    assert not found, found


def test_trainer_is_a_loop():
    assert len((PKG / "train" / "trainer.py").read_text().splitlines()) <= 350
