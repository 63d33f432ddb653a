"""Every package that pipeline/ and flows/ import is declared in pyproject.toml.

A package that only arrives as another one's dependency (playa through camelot, pydantic
through fastapi) breaks the day that one drops it. Checked statically: every import
statement (top-level or inside a function) of every module, its top-level name mapped to
the distributions that provide it in this environment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _toml() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _dist_name(requirement: str) -> str:
    """`sqlalchemy[asyncio]>=2.0,<2.1` -> `sqlalchemy` (PEP 503 normalised)."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def imported_top_level(folder: Path, root: Path = REPO) -> dict[str, str]:
    """Top-level module names imported anywhere under `folder` -> one file (under `root`) importing it."""
    found: dict[str, str] = {}
    for f in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                found.setdefault(n.split(".")[0], str(f.relative_to(root)))
    return found


def test_every_imported_package_is_declared() -> None:
    project = _toml()["project"]
    declared = {_dist_name(r) for r in project["dependencies"]}
    own = {p.split(".")[0] for p in _toml()["tool"]["setuptools"]["packages"]}
    providers = importlib.metadata.packages_distributions()
    missing = []
    for folder in ("pipeline", "flows"):
        for module, where in imported_top_level(REPO / folder).items():
            if module in sys.stdlib_module_names or module in own:
                continue
            dists = {_dist_name(d) for d in providers.get(module, [])}
            assert dists, f"{where} imports {module}, which no installed distribution provides"
            if not dists & declared:
                missing.append(f"{module} (from {', '.join(sorted(dists))}; imported in {where})")
    assert not missing, "imported but not declared in pyproject.toml dependencies: " + "; ".join(missing)


def test_the_check_sees_nested_imports(tmp_path: Path) -> None:
    """playa is imported inside a function of ingest.py: the walk must find imports there."""
    (tmp_path / "m.py").write_text("def f():\n    import playa.pdf\n    from yaml import safe_load\n")
    assert set(imported_top_level(tmp_path, tmp_path)) == {"playa", "yaml"}
