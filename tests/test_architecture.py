"""The architecture, checked from the source: layers, the torch-free inference, one store layer, sizes, packaging.

Every check walks the real files with `ast` (imports inside functions count too: a lazy import is
still a dependency), so a change that breaks a layer fails here, naming the file and the import.
"""

from __future__ import annotations

import ast
import configparser
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.data import ROOT

PACKAGES = ("daemon", "ipc", "models")
#: daemon's subpackages, lowest first: each may import only those before it (and ipc/, models/)
DAEMON_LAYERS = ("foundation", "signals", "store", "market", "loop", "processes", "backtest", "views", "supervisor", "cli")
MAX_LINES = 400
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+"
                 r"(TABLE|INDEX)|PRAGMA\s+\w+)", re.DOTALL)  # the project writes SQL in capitals


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "autoretrain." + ".".join(parts)


def source_files() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from package import module`
                yield node.lineno, f"{node.module}.{alias.name}"


FILES = source_files()


def internal_graph() -> dict[str, set[str]]:
    return {name: {target for _, target in imports_of(path) if target in FILES} for name, path in FILES.items()}


def test_every_import_names_the_installed_packages() -> None:
    """Nothing imports a bare `daemon`, `ipc` or `models`: those names belong to other projects."""
    offenders = []
    for path in [*FILES.values(), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*.py")]:
        for line, target in imports_of(path):
            if target.split(".")[0] in PACKAGES:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert offenders == []


@pytest.mark.parametrize("package", ["ipc", "models"])
def test_the_wire_and_the_model_library_import_nothing_from_the_daemon(package: str) -> None:
    offenders = [f"{FILES[name].relative_to(ROOT)}:{line} imports {target}"
                 for name in FILES if name.startswith(f"autoretrain.{package}")
                 for line, target in imports_of(FILES[name]) if target.startswith("autoretrain.daemon")]
    assert offenders == []


def test_inference_cannot_reach_torch() -> None:
    """Follow every import from the inference process's module, lazy ones included: none leads to torch."""
    graph = {name: [target for _, target in imports_of(path)] for name, path in FILES.items()}
    start = "autoretrain.daemon.processes.inference"
    seen, stack, parent = {start}, [start], {start: ""}
    while stack:
        current = stack.pop()
        for target in graph.get(current, []):
            if target == "torch" or target.startswith("torch."):
                chain = [current]
                while parent[chain[-1]]:
                    chain.append(parent[chain[-1]])
                pytest.fail(f"torch is reachable from inference: {' <- '.join([target, *chain])}")
            if target in FILES and target not in seen:
                seen.add(target)
                parent[target] = current
                stack.append(target)
    assert "autoretrain.models.runtime" in seen  # the walk really followed the imports


def daemon_layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "daemon" and parts[2] in DAEMON_LAYERS else None


def test_daemon_subpackages_import_only_the_layers_below_them() -> None:
    """foundation < signals < store < market < loop < processes < supervisor < cli: no cycle, and the order
    docs/architecture.md draws."""
    rank = {layer: position for position, layer in enumerate(DAEMON_LAYERS)}
    offenders = []
    for name, targets in internal_graph().items():
        source = daemon_layer(name)
        for target in targets:
            layer = daemon_layer(target)
            if source and layer and rank[layer] > rank[source]:
                offenders.append(f"{name} ({source}) imports {target} ({layer})")
    assert offenders == []


def test_at_most_a_handful_of_modules_at_the_daemon_top_level() -> None:
    top = sorted(path.name for path in (ROOT / "daemon").glob("*.py"))
    assert top == ["__init__.py"]
    assert {path.name for path in (ROOT / "daemon").iterdir() if path.is_dir() and path.name != "__pycache__"} \
        == set(DAEMON_LAYERS)


def test_no_sql_outside_the_store_layer() -> None:
    offenders = []
    for name, path in FILES.items():
        if name.startswith("autoretrain.daemon.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.strip()[:60]!r}")
    assert offenders == []


def test_the_sql_check_recognises_sql() -> None:
    assert SQL.search("SELECT COUNT(*) FROM candles") and SQL.search("INSERT OR IGNORE INTO signals (a) VALUES (?)")
    assert SQL.search("UPDATE signals SET pending = 0") and SQL.search("PRAGMA quick_check")
    assert not SQL.search("select a model from the registry") and not SQL.search("update the pointer")


def test_no_module_is_longer_than_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): lines for path in FILES.values()
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_setup_cfg_lists_every_package_folder() -> None:
    """The packages are listed by hand (package_dir maps them under autoretrain.*): a folder missing from the
    list would be missing from the wheel."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = {line.strip() for line in parser["options"]["packages"].splitlines() if line.strip()}
    folders = {module_name(init) for package in PACKAGES for init in (ROOT / package).rglob("__init__.py")}
    assert listed == folders
