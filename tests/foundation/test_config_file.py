"""A config file is read within bounds: size, kind of file, YAML depth and aliases; one line and exit 78.

Real files: a sparse multi-GB file made with truncate, a FIFO, /dev/zero, a generated alias bomb,
YAML nested thousands of levels deep. Each is refused by `load_config` quickly, and by the real
`autoretrainctl` and `autoretraind` with exit 78, a single line on stderr and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.config import load_config
from autoretrain.daemon.foundation.config_file import MAX_CONFIG_BYTES, MAX_DEPTH, parse_config_yaml, read_config_text
from autoretrain.daemon.foundation.errors import EX_CONFIG, ConfigError
from tests.support.cli import clean_env, run_ctl
from tests.support.data import ROOT


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    """Billion laughs: each anchor lists `width` aliases of the one before, 10**9 values expanded."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def deep_flow(depth: int = 5000) -> str:
    return "market: " + "[" * depth + "]" * depth + "\n"


def deep_block(depth: int = 1200) -> str:
    return "".join(" " * level + f"k{level}:\n" for level in range(depth))


def make_sparse(path: Path) -> Path:
    subprocess.run(["truncate", "-s", "3G", str(path)], check=True)
    return path


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def written(text: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.write_text(text)
        return path
    return make


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "nested 5,000 levels (flow)": (written(deep_flow()), "refused: nested more than 50 levels deep"),
    "nested 1,200 levels (block)": (written(deep_block()), "refused: nested more than 50 levels deep"),
    "nested 1 MiB of [": (written("[" * (MAX_CONFIG_BYTES - 1)), "refused: nested more than 50 levels deep"),
    "alias bomb": (written(alias_bomb()), "refused: more than 100000 values once aliases are expanded"),
    "aliases deep once expanded": (written("a: &a [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"
                                           "b: [[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]\n"),
                                   "refused: nested more than 50 levels deep once aliases are expanded"),
    "recursive alias": (written("market: &m {symbols: *m}\n"), "refused: an alias refers to the node that contains it"),
    "too many aliases": (written("x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n"), "refused: more than 100 aliases"),
    "sparse 3 GB file": (make_sparse, f"is 3221225472 bytes; at most {MAX_CONFIG_BYTES} are read"),
    "just over 1 MiB": (written("#" * MAX_CONFIG_BYTES + "\n"), f"is {MAX_CONFIG_BYTES + 1} bytes"),
    "FIFO": (make_fifo, "is not a regular file"),
    "directory": (lambda path: (path.mkdir(), path)[1], "is not a regular file"),
    "not UTF-8": (lambda path: (path.write_bytes(b"training:\n  epochs: \xff\n"), path)[1], "not UTF-8 (byte 20)"),
    "5,000-digit integer": (written("training:\n  epochs: " + "9" * 5000 + "\n"), "invalid YAML value: Exceeds the limit"),
    "date out of range": (written("market:\n  simulated:\n    start: 2024-13-45\n"), "invalid YAML value: month must be"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_load_config_refuses_what_it_should_not_read(tmp_path: Path, name: str) -> None:
    make, problem = BAD_FILES[name]
    path = make(tmp_path / "config.yaml")
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert problem in message and str(path) in message and "\n" not in message, message
    assert caught.value.exit_code == EX_CONFIG


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "fifo"])
def test_the_reader_itself_never_reads_a_special_file(tmp_path: Path, special: str) -> None:
    """Even past the check (the path replaced by a FIFO in between), the reader neither blocks nor reads on."""
    path = make_fifo(tmp_path / "fifo") if special == "fifo" else Path(special)
    with pytest.raises(ConfigError, match="is not a regular file"):
        read_config_text(path)


def test_a_path_that_cannot_be_looked_at_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"cannot read config file .*file/config.yaml \(from --config\): Not a dir"):
        load_config(tmp_path / "file" / "config.yaml", env={})
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(ConfigError, match=r"cannot read config file .*loop \(from \$AUTORETRAIN_CONFIG\): Too many"):
        load_config(None, env={"AUTORETRAIN_CONFIG": str(tmp_path / "loop")})


def test_anchors_aliases_and_merge_keys_within_the_bounds_still_work(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("auto_training: {min_signals: &n 30, rolling_window: *n}\n"
                    "market:\n  exchange_params:\n    options: &o {a: 1, b: [1, 2]}\n    headers: {<<: *o, c: 3}\n"
                    "    urls: {deep: " + "{x: " * 20 + "1" + "}" * 20 + "}\n")
    config = load_config(path, env={})
    assert (config.auto_training.min_signals, config.auto_training.rolling_window) == (30, 30)
    assert config.market.exchange_params["headers"] == {"a": 1, "b": [1, 2], "c": 3}


@pytest.mark.parametrize(("levels", "allowed"), [(MAX_DEPTH - 1, True), (MAX_DEPTH, False)])
def test_the_depth_bound_is_exact(levels: int, allowed: bool) -> None:
    text = "{a: " * levels + "1" + "}" * levels  # `levels` mappings and the scalar inside them
    if allowed:
        assert parse_config_yaml(text, Path("x.yaml")) is not None
    else:
        with pytest.raises(ConfigError, match="nested more than 50 levels deep"):
            parse_config_yaml(text, Path("x.yaml"))


def run_daemon(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autoretrain.daemon.supervisor.main", "--config", str(config)],
                          capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=120)


CLI_CASES = {
    "nested 5,000 levels": (written(deep_flow()), "nested more than 50 levels deep"),
    "alias bomb": (written(alias_bomb()), "once aliases are expanded"),
    "sparse 3 GB file": (make_sparse, "at most 1048576 are read"),
    "FIFO": (make_fifo, "is not a regular file"),
    "cooldown .inf": (written("auto_training:\n  cooldown_hours: .inf\n"), "auto_training.cooldown_hours: Input should be a finite number"),
    "max_request_bytes past a C long": (written("control:\n  max_request_bytes: 99999999999999999999999\n"),
                                        "control.max_request_bytes: Input should be less than or equal to 67108864"),
}


@pytest.mark.parametrize("program", ["autoretrainctl", "autoretraind"])
@pytest.mark.parametrize("name", list(CLI_CASES))
def test_the_real_programs_exit_78_with_one_line(tmp_path: Path, program: str, name: str) -> None:
    make, problem = CLI_CASES[name]
    path = make(tmp_path / "config.yaml")
    result = run_ctl("--config", str(path), "status") if program == "autoretrainctl" else run_daemon(path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 78, result.stderr[-2000:]
    assert len(lines) == 1 and problem in lines[0] and lines[0].startswith(f"{program}: error: "), lines[:5]
    assert "Traceback" not in result.stderr and result.stdout == ""
