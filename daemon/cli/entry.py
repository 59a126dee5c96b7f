"""The console scripts' entry points: they import only the standard library before the real `main`, so a
missing or broken dependency (a half-finished `pip install`, a venv moved to another Python) is one line
at error priority and exit 72 rather than a traceback systemd retries until its start limit."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable

from autoretrain.daemon.foundation.logs import error_line

EX_OSFILE = 72  # sysexits: a file the program needs (here: an installed package) is missing or broken
#: what the children import beyond the supervisor's own imports; checked before any child starts
CHILD_DEPENDENCIES = ("numpy", "pandas", "zmq", "onnxruntime", "onnx", "ccxt", "torch", "psutil", "yaml", "pydantic")


def missing_dependencies(names: Iterable[str] = CHILD_DEPENDENCIES) -> list[str]:
    """The top-level modules that cannot be found (found by spec, not imported: torch takes seconds)."""
    missing = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def dependency_message(detail: str) -> str:
    return (f"a Python dependency is missing or broken: {detail}; reinstall the project into its venv "
            f"({sys.prefix}/bin/pip install <project directory>)")


def _run(module: str, prog: str, check: Callable[[], list[str]] | None = None) -> int:
    try:
        main = importlib.import_module(module).main
    except ImportError as exc:  # ModuleNotFoundError for a missing package, ImportError for a broken one
        error_line(prog, dependency_message(str(exc)))
        return EX_OSFILE
    missing = check() if check else []
    if missing:
        error_line(prog, dependency_message("cannot find " + ", ".join(missing)))
        return EX_OSFILE
    return int(main() or 0)


def autoretraind() -> int:
    return _run("autoretrain.daemon.supervisor.main", "autoretraind", missing_dependencies)


def autoretrainctl() -> int:
    return _run("autoretrain.daemon.cli.main", "autoretrainctl")


if __name__ == "__main__":  # pragma: no cover - `python -m autoretrain.daemon.cli.entry`
    sys.exit(autoretraind())
