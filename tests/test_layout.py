"""The package's layout holds: no import cycle, imports flowing down the layers, small modules."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _check_layout():
    spec = importlib.util.spec_from_file_location("check_layout", REPO / "tools" / "check_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_no_upward_import_no_long_module():
    pytest.importorskip("grimp")
    assert _check_layout().problems(REPO) == []


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks have teeth: a planted cycle inside a layer and a planted upward import are both named."""
    pytest.importorskip("grimp")
    pkg = tmp_path / "exactverify"
    for sub in ("core", "search"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "core" / "b.py").write_text("from . import a\n")
    (pkg / "core" / "c.py").write_text("from ..search import d\n")
    (pkg / "search" / "d.py").write_text("x = 1\n" * 901)
    layout = _check_layout()
    saved = {k: v for k, v in sys.modules.items() if k == "exactverify" or k.startswith("exactverify.")}
    for k in saved:
        del sys.modules[k]
    try:
        found = layout.problems(tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
        for k in [k for k in sys.modules if k == "exactverify" or k.startswith("exactverify.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    assert any("cycle" in p and "exactverify.core.a" in p and "exactverify.core.b" in p for p in found), found
    assert any("exactverify.core.c (core) imports exactverify.search.d (search)" in p for p in found), found
    assert any("d.py has 901 lines" in p for p in found), found


def test_import_linter_contracts_are_kept():
    cli = pytest.importorskip("importlinter.cli")
    assert cli.lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0


def test_every_public_name_has_a_docstring():
    """Modules, public functions and classes, and public methods of public classes."""
    import ast
    missing = []
    for path in sorted((REPO / "exactverify").rglob("*.py")):
        tree = ast.parse(path.read_text())
        where = path.relative_to(REPO)
        if not ast.get_docstring(tree) and path.name != "__main__.py":
            missing.append(f"{where}: module")
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            if not ast.get_docstring(node):
                missing.append(f"{where}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef):
                missing += [f"{where}:{m.lineno} {node.name}.{m.name}" for m in node.body
                            if isinstance(m, ast.FunctionDef) and not m.name.startswith("_")
                            and not ast.get_docstring(m)]
    assert missing == []
