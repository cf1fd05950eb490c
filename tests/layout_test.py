"""The folder tree is the architecture: no module imports from a layer above its own."""

import ast
import pathlib

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "bert_adapters"
# Lowest first. A module may import its own layer and the layers below it.
LAYERS = [
    {"io_utils"},
    {"ops"},
    {"model"},
    {"checkpoints"},
    {"data"},
    {"tasks"},
    {"training"},
    {"sweep", "bank", "analysis"},
    {"cli", "glue_submission"},
]
# Serving and analysis read what training wrote; they never run it.
NEVER = {"bank": {"training", "sweep"}, "analysis": {"training", "sweep"}}


def _layer(part):
    for rank, names in enumerate(LAYERS):
        if part in names:
            return rank
    raise AssertionError(f"bert_adapters.{part} is in no layer of {__file__}: add it")


def _imports(path):
    """The top-level parts of bert_adapters that `path` imports (any depth, lazily too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "bert_adapters" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.stem != "__init__")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downwards(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = sorted(p for p in _imports(path) - {own}
                    if p in PACKAGE_PARTS and _layer(p) > _layer(own))
    assert not upward, f"{path.relative_to(REPO_ROOT)} imports from a higher layer: {upward}"
    banned = sorted(_imports(path) & NEVER.get(own, set()))
    assert not banned, f"{path.relative_to(REPO_ROOT)} imports {banned}"


PACKAGE_PARTS = {p.stem if p.suffix else p.name for p in PACKAGE.iterdir()
                 if (p.suffix == ".py" and p.stem != "__init__")
                 or (p.is_dir() and any(p.glob("*.py")))}


def test_every_part_of_the_package_has_a_layer():
    for part in PACKAGE_PARTS:
        _layer(part)
    assert not [p for p in pathlib.Path(PACKAGE).glob("*.py")
                if p.stem not in ("__init__", "io_utils", "glue_submission")], \
        "modules belong in a folder of their layer"
