"""The layering of DESIGN.md, enforced: an import scan of every module of sakd/, export/ and
hardware/ (function-level imports included), and no module importing another's private names."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"sakd": "sakd", "export": "sakd.export", "hardware": "sakd.hardware"}

TRAINING = ("sakd.config", "sakd.data", "sakd.models", "sakd.distill", "sakd.train")
BASE = ("sakd.errors", "sakd.io", "sakd")  # the package root and its light helpers
LAYERS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # (modules, sakd.* they may import, outside packages they must not import at module level)
    ("sakd.hardware", ("sakd.hardware",), ("torch", "spikingjelly", "nir", "onnx", "rich", "typer")),
    ("sakd.export", ("sakd.export", "sakd.models", "sakd.hardware", *BASE), ()),
    ("sakd.formats", ("sakd.formats", "sakd.export", "sakd.models", "sakd.hardware", *BASE), ()),
    *[(t, (*TRAINING, "sakd.hardware", *BASE), ()) for t in TRAINING],
    ("sakd.app", ("sakd.app", "sakd.formats", "sakd.export", *TRAINING, "sakd.hardware", *BASE), ()),
    ("sakd.render", ("sakd.render", "sakd.app", "sakd.formats", "sakd.hardware", *BASE), ()),
    ("sakd.cli", ("sakd.cli", "sakd.app", "sakd.render", "sakd.config", *BASE), ()),
    ("sakd.errors", ("sakd.hardware.errors",), ()),
    ("sakd.io", ("sakd.hardware.atomic",), ()),
    ("sakd", (), ("torch", "spikingjelly")),  # sakd/__init__.py stays light
]


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path, module: str) -> list[tuple[str, int, bool, list[str]]]:
    """(imported module, line, at module level, imported names) for every import."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno, id(node) in top, [a.name for a in node.names]))
    return found


def layer_of(module: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    best = None
    for layer in LAYERS:
        inside = module == layer[0] or module.startswith(layer[0] + ".")
        if inside and (best is None or len(layer[0]) > len(best[0])):
            best = layer
    assert best is not None, module
    return best


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    """``name`` is one of ``prefixes`` or inside one (the root "sakd" only matches itself)."""
    return any(name == p or (p != "sakd" and name.startswith(p + ".")) for p in prefixes)


ALL = modules()


@pytest.mark.parametrize("module", sorted(ALL))
def test_imports_follow_the_layers(module):
    """Every sakd.* import (function-level ones included) goes to a layer the DESIGN table allows;
    hardware/ imports no torch, spikingjelly, nir or onnx at module level."""
    _, allowed, banned = layer_of(module)
    problems = []
    for name, line, top, _ in imports(ALL[module], module):
        if name.startswith("sakd") and not under(name, allowed) and name != module:
            problems.append(f"line {line}: imports {name}")
        if top and under(name, banned):
            problems.append(f"line {line}: imports {name} at module level")
    assert not problems, f"{module} ({ALL[module].relative_to(ROOT)}): " + "; ".join(problems)


@pytest.mark.parametrize("module", sorted(ALL))
def test_no_private_names_from_other_modules(module):
    problems = []
    for name, line, _, names in imports(ALL[module], module):
        if name.startswith("sakd") and name != module:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                problems.append(f"line {line}: {', '.join(private)} from {name}")
    assert not problems, f"{module}: " + "; ".join(problems)


def test_hardware_imports_without_torch():
    """In a fresh interpreter, every hardware module imports with torch unavailable."""
    import subprocess

    names = [m for m in ALL if m.startswith("sakd.hardware")]
    code = ("import sys; sys.modules['torch'] = None; sys.modules['spikingjelly'] = None\n"
            + "\n".join(f"import {m}" for m in names))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "tests")
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_scan_sees_function_level_imports():
    """The scan would catch an upward import hidden inside a function."""
    source = "def f():\n    from sakd.app import export\n"
    path = ROOT / "tests" / "_layering_probe.py"
    path.write_text(source)
    try:
        found = imports(path, "sakd.hardware.probe")
    finally:
        path.unlink()
    assert found == [("sakd.app", 2, False, ["export"])]
    _, allowed, _ = layer_of("sakd.hardware.probe")
    assert not under("sakd.app", allowed)
