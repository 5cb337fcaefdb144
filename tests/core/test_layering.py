"""The Kedro-free library stays Kedro-free: nothing under ``glta_pipelines.core`` imports Kedro,
MLflow or the rest of the package (framework, pipelines, serving, the Kedro datasets)."""

from __future__ import annotations

import ast
from pathlib import Path

import glta_pipelines.core

FORBIDDEN = ("kedro", "mlflow", "glta_pipelines.framework", "glta_pipelines.pipelines", "glta_pipelines.serving",
             "glta_pipelines.datasets", "glta_pipelines.settings", "glta_pipelines.cli")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_core_imports_neither_kedro_nor_mlflow_nor_the_framework():
    root = Path(glta_pipelines.core.__file__).parent
    offending = {
        f"{path.relative_to(root.parent)}: {name}"
        for path in root.rglob("*.py")
        for name in imported_modules(path)
        if any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)
    }
    assert not offending, sorted(offending)


def test_the_check_finds_a_forbidden_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from kedro.io import MemoryDataset\n    import mlflow.pyfunc\n")
    assert {"kedro.io", "mlflow.pyfunc"} <= imported_modules(module)


def test_every_core_package_has_a_map():
    """Each sub-package's ``__init__.py`` says what its files are (a docstring naming each of them)."""
    root = Path(glta_pipelines.core.__file__).parent
    for package in [root, *(p.parent for p in root.rglob("__init__.py"))]:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        files = [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
        missing = [f for f in files if f not in doc and f[:-3] not in doc]
        assert not missing, f"{package.relative_to(root.parent)}/__init__.py does not map {missing}"
