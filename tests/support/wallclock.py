"""A wall clock a test can step back and forth for the daemon's processes alone (tests/support/wallclock_shift.c).

`WallClockShift.build(tmp_path)` compiles the shim (skipped with the reason where there is no C compiler);
`env()` is what the daemon is started with; `step(seconds)` moves every process's wall clock by that much
from now on, as `date -s` would, while their monotonic clocks go on untouched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("wallclock_shift.c")


class WallClockShift:
    def __init__(self, library: Path, shift_file: Path) -> None:
        self.library, self.shift_file = library, shift_file
        self.seconds = 0.0
        self.shift_file.write_text("0\n")

    @staticmethod
    def unavailable() -> str | None:
        if shutil.which("cc") is None and shutil.which("gcc") is None:
            return "no C compiler (cc) to build the wall-clock shim"
        return None

    @classmethod
    def build(cls, directory: Path) -> WallClockShift:
        directory.mkdir(parents=True, exist_ok=True)
        library = directory / "wallclock_shift.so"
        compiler = shutil.which("cc") or shutil.which("gcc") or "cc"
        built = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SOURCE), "-ldl"],
                               capture_output=True, text=True, timeout=120)
        assert built.returncode == 0, built.stderr
        return cls(library, directory / "wallclock-shift")

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(self.library), "WALLCLOCK_SHIFT_FILE": str(self.shift_file)}

    def step(self, seconds: float) -> None:
        """Step the wall clock by `seconds` (negative: back)."""
        self.seconds += seconds
        temporary = self.shift_file.with_name(self.shift_file.name + ".tmp")
        temporary.write_text(f"{self.seconds:.3f}\n")
        temporary.replace(self.shift_file)
