"""Dependencies point one way along the pipeline (ARCHITECTURE.md): every import of every module, lazy ones
included, is checked against the layers each package may use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    "a1_contract": set(),
    "a1_common": {"a1_contract"},
    "pretrain": {"a1_common", "a1_contract"},
    "deploy": {"a1_common", "a1_contract"},
    "robot_bridge": {"deploy", "a1_common", "a1_contract"},
    "finetune": {"robot_bridge", "deploy", "pretrain", "a1_common", "a1_contract"},
}
"""Package -> the packages of ours it may import (besides itself)."""


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import statement in ``source`` (relative imports are not used)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def wrong_way_imports(root: Path) -> list[str]:
    """Every import under ``root``'s packages that ``ALLOWED`` forbids, as ``file:line: a -> b``."""
    bad = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imported_modules(path.read_text()):
                top = module.split(".")[0]
                if top in ALLOWED and top != package and top not in allowed:
                    bad.append(f"{path.relative_to(root)}:{line}: {package} -> {module}")
    return bad


def test_no_package_imports_a_later_stage_or_the_trainer():
    assert wrong_way_imports(REPO) == []


def test_every_package_is_in_the_layer_map():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages == set(ALLOWED), "a new top-level package needs its place in ALLOWED (and ARCHITECTURE.md)"


@pytest.mark.parametrize(
    ("package", "line", "expected"),
    [
        ("robot_bridge", "from pretrain.config import TrainConfig", "robot_bridge -> pretrain.config"),
        ("deploy", "    import finetune.actor", "deploy -> finetune.actor"),
        ("a1_common", "from robot_bridge import qos", "a1_common -> robot_bridge"),
    ],
)
def test_a_wrong_way_import_is_found_even_inside_a_function(tmp_path, package, line, expected):
    for name in ALLOWED:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / package / "mod.py").write_text(f"def f():\n    {line.strip()}\n")
    (bad,) = wrong_way_imports(tmp_path)
    assert bad.endswith(expected) and bad.startswith(f"{package}/mod.py:2:")
