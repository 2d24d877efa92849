"""The pure-twin pass (scripts/test: ``RDS_CSI_NO_EXTENSIONS=1 pytest -m native tests/unit``) runs exactly the unit
test modules that load ``rds_csi._native``: those importing it, or importing a module that does, at any depth.

The rule is the ``native`` marker (``pytestmark = pytest.mark.native``); this test derives who must carry it from
the import statements of src/ and tests/, so a new module that reaches the native code (a sysfs scanner behind
nvme/, say) fails here until it is marked, and a marked module that no longer reaches it fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
NATIVE = "rds_csi._native"


def _modules() -> dict[str, Path]:
    """Every module of the package and of the tests, by dotted name."""
    found: dict[str, Path] = {}
    for root, top in ((REPO / "src", "rds_csi"), (REPO, "tests")):
        for path in (root / top).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _with_parents(name: str) -> Iterator[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def _statements(tree: ast.Module) -> Iterator[ast.AST]:
    """Every statement, nested ones included; expressions (most of a module's nodes) are not visited."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(
            child
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case)
        )


def _imported_by(name: str, path: Path, known: AbstractSet[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body (functions and ``TYPE_CHECKING`` blocks too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _statements(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            targets.add(source)
            targets.update(f"{source}.{alias.name}" for alias in node.names)  # names that are submodules
    return {module for target in targets for module in _with_parents(target) if module in known} - {name}


def modules_reaching_native() -> set[str]:
    """Modules that import rds_csi._native, directly or through other project modules."""
    modules = _modules()
    imports = {name: _imported_by(name, path, modules.keys()) for name, path in modules.items()}
    reaching = {name for name in modules if name == NATIVE or name.startswith(NATIVE + ".")}
    grew = True
    while grew:
        new = {name for name, targets in imports.items() if name not in reaching and targets & reaching}
        reaching |= new
        grew = bool(new)
    return reaching


def _marked_native(path: Path) -> bool:
    """Whether the module sets ``pytestmark`` to the native marker (alone or in a list)."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            return any(
                isinstance(part, ast.Attribute) and ast.unparse(part) == "pytest.mark.native"
                for part in ast.walk(node.value)
            )
    return False


def test_the_unit_modules_marked_native_are_exactly_those_that_load_the_native_code() -> None:
    modules = _modules()
    reaching = modules_reaching_native()
    assert {"tests.unit.native.test_native_attachment_table", "tests.unit.attach.test_attach_manager"} <= reaching
    unit = {
        name: path
        for name, path in sorted(modules.items())
        if name.startswith("tests.unit.") and name.rpartition(".")[2].startswith("test_")
    }
    marked = {name for name, path in unit.items() if _marked_native(path)}
    unmarked = [name for name in unit if name in reaching and name not in marked]
    needless = sorted(marked - reaching)
    assert not unmarked, f"these load rds_csi._native but skip the pure-twin pass; add pytestmark: {unmarked}"
    assert not needless, f"marked native but never load rds_csi._native: {needless}"


def test_an_import_through_a_package_init_counts(tmp_path: Path) -> None:
    # ``from pkg.sub import x`` runs pkg/__init__.py first: a package whose __init__ reaches the native code
    # brings every importer of any of its submodules along.
    assert set(_with_parents("rds_csi.attach.decisions")) == {"rds_csi", "rds_csi.attach", "rds_csi.attach.decisions"}
    module = tmp_path / "probe.py"
    module.write_text("from rds_csi.attach.decisions import decide_expiry\nfrom . import sibling\n")
    known = {"rds_csi", "rds_csi.attach", "rds_csi.attach.decisions", "tests.unit.sibling"}
    assert _imported_by("tests.unit.probe", module, known) == known


def test_the_pure_twin_pass_selects_the_native_marker() -> None:
    pure = [row for row in (REPO / "scripts" / "test").read_text().splitlines() if "RDS_CSI_NO_EXTENSIONS=1" in row]
    assert any("pytest" in row and row.endswith("-m native tests/unit") for row in pure), pure
