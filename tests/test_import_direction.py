"""The layer rule: each package imports only the packages below it.

``golden`` <- ``rtl`` <- ``sim`` / ``boards`` <- ``tools``, with ``data`` (datasets and test-set
evaluation) just above ``golden`` and ``train`` / ``nir`` beside ``sim``. ``train`` may read
``rtl`` for the ``fits`` verdict that ``from_torch`` returns. Every import statement of every
module counts, including the ones inside functions (they are where an upward import hides).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the subpackage of ``spikeforge`` it is installed as (pyproject.toml).
FOLDERS = {"golden": "golden", "rtl": "rtl", "data": "data", "sim": "sim", "boards": "boards",
           "train": "train", "nirio": "nir", "tools": "tools"}
#: Subpackage -> the other subpackages it may import (``tools`` may import anything).
ALLOWED = {
    "golden": set(),
    "rtl": {"golden"},
    "data": {"golden"},
    "sim": {"golden", "rtl", "data"},
    "boards": {"golden", "rtl", "data"},
    "train": {"golden", "data", "rtl"},
    "nir": {"golden"},
    "tools": set(FOLDERS.values()),
}
SUBPACKAGES = set(FOLDERS.values())


def imported_subpackages(source, package):
    """``(line, subpackage)`` of every import of another ``spikeforge`` subpackage in
    ``source``, a module of ``package``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            dotted = [alias.name.split(".") for alias in node.names]
            found += [(node.lineno, parts[1]) for parts in dotted
                      if parts[0] == "spikeforge" and len(parts) > 1]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "spikeforge":
                    continue
                parts = parts[1:]
            elif node.level == 1:
                parts = [package]
            else:  # `from ..x` inside spikeforge.<package> names spikeforge.x
                parts = (node.module or "").split(".") if node.module else []
            if parts:
                found.append((node.lineno, parts[0]))
            else:  # `from spikeforge import tools` or `from .. import tools`
                found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name in SUBPACKAGES and name != package]


def _modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            yield pytest.param(path, package, id=f"{folder}/{path.name}")


@pytest.mark.parametrize("path, package", list(_modules()))
def test_module_imports_only_lower_layers(path, package):
    upward = [f"line {line}: {name}"
              for line, name in imported_subpackages(path.read_text(), package)
              if name not in ALLOWED[package]]
    assert not upward, f"{path.relative_to(ROOT)} ({package}) imports {', '.join(upward)}"


@pytest.mark.parametrize("source, package, expected", [
    ("from ..tools.datasets import mnist_split\n", "train", [(1, "tools")]),
    ("def f():\n    from spikeforge.tools import cli\n", "golden", [(2, "tools")]),
    ("import spikeforge.sim.harness\n", "rtl", [(1, "sim")]),
    ("from .. import boards\n", "rtl", [(1, "boards")]),
    ("from spikeforge import __version__\nfrom . import layout\n", "rtl", []),
])
def test_the_checker_sees_every_import_form(source, package, expected):
    assert imported_subpackages(source, package) == expected


def test_every_source_folder_is_checked():
    # A new top-level package folder must get a row in FOLDERS (and a rule in ALLOWED).
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"spikeforge"}
    assert packages == set(FOLDERS)
