"""Dependencies point inward: domain imports only the standard library; app never imports adapters."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "amanah"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_imports_only_stdlib_and_itself(path: Path) -> None:
    """A domain module imports nothing but the standard library and other domain modules."""
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top in sys.stdlib_module_names or name.startswith("amanah.domain"), (
            f"{path.name} imports {name}"
        )


@pytest.mark.parametrize("path", sorted((SRC / "app").glob("*.py")), ids=lambda p: p.name)
def test_app_never_imports_adapters_or_entrypoints(path: Path) -> None:
    """Use cases depend on ports, never on adapters, entrypoints or the composition root."""
    for name in imports_of(path):
        assert not name.startswith(("amanah.adapters", "amanah.entrypoints", "amanah.bootstrap")), (
            f"{path.name} imports {name}"
        )
        assert name.split(".")[0] not in {"sqlalchemy", "fastapi", "starlette", "httpx", "psycopg"}, (
            f"{path.name} imports {name}"
        )
