"""The house rules that no single feature test would notice breaking: imports run one way, from later stages of
the method to earlier ones (docs/architecture.md), and every package the code imports is pinned.

Both read the source with `ast` (nothing is imported), so an import inside a function counts as much as one at the
top of a module.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each package's stage: a module may import its own package and packages of earlier stages only. Packages of one
# stage do not import each other either: suites, monitoring and agents each build on judges, not on one another.
STAGES = {
    "core": 0,
    "annotation": 1,
    "judges": 2,
    "suites": 3,
    "monitoring": 3,
    "agents": 3,
    "demo": 4,
    "evalstudio": 5,  # settings, urls, the Celery app: wires every app together, and no app imports it
}


def _modules(package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported_top_levels(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import anywhere in the module; relative imports stay inside."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def _back_imports(package: str) -> list[str]:
    stage = STAGES[package]
    found = []
    for path, tree in _modules(package):
        for line, imported in _imported_top_levels(tree):
            if imported == package or imported not in STAGES:
                continue
            if STAGES[imported] >= stage:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (stage {STAGES[imported]})")
    return found


@pytest.mark.parametrize("package", [p for p in STAGES if (ROOT / p).is_dir()])
def test_no_module_imports_a_later_stage_or_a_sibling(package):
    found = _back_imports(package)
    assert not found, f"{package} (stage {STAGES[package]}) must not import:\n" + "\n".join(found)


def test_the_rule_catches_a_lazy_import_inside_a_function():
    tree = ast.parse("def f():\n    from monitoring.services import drain_kick\n")
    assert list(_imported_top_levels(tree)) == [(2, "monitoring")]


def _pinned() -> set[str]:
    names = set()
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / requirements).read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==\S+", line.strip())
            if match:
                names.add(_normal(match.group(1)))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_package_the_code_imports_is_pinned():
    distributions = importlib.metadata.packages_distributions()
    pinned = _pinned()
    # clients/ holds client libraries with their own packaging (clients/python: evalstudio_client), not apps: no
    # stage, but the tests import them from source and their imports must be pinned like the app's.
    clients = {path.parent.name for path in (ROOT / "clients").glob("*/*/__init__.py")}
    first_party = {*STAGES, "tests", "bench", *clients} | {path.stem for path in (ROOT / "bench").glob("*.py")}
    missing = set()
    for folder in (*[p for p in STAGES if (ROOT / p).is_dir()], "tests", "bench", "clients"):
        for path, tree in _modules(folder):
            for _, imported in _imported_top_levels(tree):
                if imported in sys.stdlib_module_names or imported in first_party or imported == "__future__":
                    continue
                dists = distributions.get(imported)
                assert dists, f"{path.relative_to(ROOT)} imports {imported!r}, which no installed package provides"
                if not any(_normal(dist) in pinned for dist in dists):
                    missing.add(f"{imported} ({', '.join(dists)}), imported by {path.relative_to(ROOT)}")
    assert not missing, "pin these in requirements.txt (or requirements-dev.txt for tests only): " + "; ".join(
        sorted(missing)
    )
