"""The package list in pyproject.toml names every package of the source tree (a non-editable
install, ``pip install .``, installs only what it names)."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {name: ROOT / path for name, path in config["package-dir"].items()}
    found = set()
    for top, folder in dirs.items():
        for init in folder.rglob("*.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(folder)
            found.add(".".join((top, *rel.parts)))
    assert found == set(config["packages"]), sorted(found ^ set(config["packages"]))
