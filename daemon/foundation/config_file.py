"""Reading a config file within bounds: a regular file of at most 1 MiB, YAML at most 50 levels deep, few aliases.

The file is read before anything else runs, by the daemon and by every `autoretrainctl` call. Unbounded,
a mistyped or hostile path would not end in one line and exit 78: `/dev/zero` or a sparse multi-GB file
reads until MemoryError, a FIFO blocks forever, YAML nested a few thousand levels deep recurses into a
RecursionError thousands of traceback lines long, and an alias bomb ("billion laughs") is small on disk
but expands into billions of nodes when validated. Every refusal here is a `ConfigError`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from autoretrain.daemon.foundation.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # the shipped, fully commented config.yaml is under 20 KiB
MAX_DEPTH = 50  # nesting levels of mappings and lists, counted after aliases are expanded
MAX_ALIASES = 100
MAX_NODES = 100_000  # mappings, lists and scalars, counted after aliases are expanded


def check_config_file(path: Path, origin: str) -> Path:
    """`path` if it names a regular file; a missing, unreadable or special file is a one-line ConfigError."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (from {origin})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} (from {origin}): {_reason(exc)}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"config file {path} (from {origin}) is not a regular file")
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def read_config_text(path: Path) -> str:
    """The file's text, at most MAX_CONFIG_BYTES of UTF-8, read from a regular file only."""
    try:
        # O_NONBLOCK: should the path have become a FIFO since it was checked, open returns at once
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config file {path} is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is {info.st_size} bytes; at most {MAX_CONFIG_BYTES} are read")
        data = _read_at_most(fd, MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:  # it grew after fstat
        raise ConfigError(f"config file {path} is over {MAX_CONFIG_BYTES} bytes; at most {MAX_CONFIG_BYTES} are read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 (byte {exc.start})") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _TooBig(Exception):
    """The document passes a bound (depth, aliases, expanded size); the message says which."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer counts depth, aliases and expanded nodes before anything is constructed.

    Each node's expanded size and depth are known once its children are composed, so an alias costs what
    its anchor expands to without walking the expansion (which is what makes an alias bomb explode).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES} aliases (*name)")
            node = super().compose_node(parent, index)
            if id(node) not in self._measured:
                raise _TooBig("an alias refers to the node that contains it")
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._measure(node)
        return node

    def _measure(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        sizes = [self._measured[id(child)] for child in children]
        size = 1 + sum(count for count, _ in sizes)
        depth = 1 + max((levels for _, levels in sizes), default=0)
        if depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep once aliases are expanded")
        if size > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES} values once aliases are expanded")
        self._measured[id(node)] = (size, depth)


def parse_config_yaml(text: str, path: Path) -> Any:
    """The YAML document in `text` as Python values; anything malformed or past a bound is a ConfigError."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _TooBig as exc:
        raise ConfigError(f"{path}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    except (ValueError, OverflowError) as exc:  # int() past its digit limit, a timestamp out of range
        problem = " ".join(str(exc).split()).split("; ")[0]
        raise ConfigError(f"{path}: invalid YAML value: {problem}") from None
    finally:
        loader.dispose()
