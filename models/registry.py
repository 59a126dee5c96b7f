"""The model registry on disk: immutable version folders and an atomic "promoted" pointer (no torch).

Layout, per symbol and timeframe:

    models/BTC_USDT/1h/v0007/{model.onnx, meta.json, parity.npz}
    models/BTC_USDT/1h/promoted.json     {"version": "v0007", "history": ["v0005", ...], ...}
    models/BTC_USDT/1h/last_version      highest number ever issued (numbers are never reused)
    models/BTC_USDT/1h/.lock             flock taken by every writer

A version is built in a `.tmp-<pid>-<token>` folder, every file and the folder fsynced, then renamed
into place, so a version folder is either absent or complete. The pointer is rewritten to a temporary
file, fsynced and `os.replace`d, so a reader sees the old champion or the new one, never a mix; a
version folder never changes after the rename, so what the pointer names is always whole. `history`
lists earlier champions, newest first: rollback pops it. Retention keeps the champion, the previous
champion and the newest `keep_candidates` versions.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoretrain.models.durable import fsync_dir, write_atomic
from autoretrain.models.errors import ChampionChanged, InvalidVersion, NothingToRollBack, RegistryError, VersionNotFound

POINTER_FILE = "promoted.json"
COUNTER_FILE = "last_version"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
HISTORY_LIMIT = 50
_VERSION_RE = re.compile(r"^v([0-9]{4,9})$", re.ASCII)  # ASCII digits only: "v٣" is no version


def _is_version(value: object) -> bool:
    return isinstance(value, str) and _VERSION_RE.match(value) is not None


def series_key(symbol: str) -> str:
    """`BTC/USDT` -> `BTC_USDT` (also `:` of derivatives), a safe folder name."""
    return symbol.replace("/", "_").replace(":", "_")


def version_name(number: int) -> str:
    return f"v{number:04d}"


def parse_version(text: str) -> str:
    """Accept `v0007`, `v7` or `7`; return the folder name `v0007`."""
    match = re.fullmatch(r"v?([0-9]{1,9})", text.strip(), re.ASCII)
    if not match or int(match.group(1)) <= 0:
        raise InvalidVersion(f"invalid version {text!r}: expected a name such as v0007 (or its number, 7)")
    return version_name(int(match.group(1)))


def version_number(name: str) -> int:
    match = _VERSION_RE.match(name)
    if not match:
        raise ValueError(f"not a version name: {name!r}")
    return int(match.group(1))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_staging(name: str) -> bool:
    """A staging folder whose builder process is gone (killed mid-training)."""
    if not name.startswith(STAGING_PREFIX):
        return False
    pid = name[len(STAGING_PREFIX):].split("-")[0]
    return not (pid.isdigit() and int(pid) > 0 and _pid_alive(int(pid)))


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: Path
    meta: dict[str, Any] | None
    promoted: bool
    error: str | None = None

    @property
    def number(self) -> int:
        return version_number(self.version)


class Staging:
    """A version being built; `commit` gives it the next number and renames it into place."""

    def __init__(self, registry: Registry, symbol: str, timeframe: str, path: Path) -> None:
        self.registry, self.symbol, self.timeframe, self.path = registry, symbol, timeframe, path
        self.version: str | None = None

    def write_meta(self, meta: dict[str, Any]) -> None:
        (self.path / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")

    def commit(self, meta: dict[str, Any]) -> str:
        """Number the version (under the series lock), write its final meta.json, fsync, rename; returns the name."""
        series = self.registry.series_dir(self.symbol, self.timeframe)
        with self.registry.locked(self.symbol, self.timeframe):
            number = self.registry._last_number(series) + 1
            version = version_name(number)
            self.write_meta({**meta, "version": version})
            for child in self.path.iterdir():
                with open(child, "rb") as handle:
                    os.fsync(handle.fileno())
            fsync_dir(self.path)
            os.rename(self.path, series / version)
            fsync_dir(series)
            write_atomic(series / COUNTER_FILE, f"{number}\n".encode())
        self.version = version
        self.path = series / version
        return version

    def discard(self) -> None:
        if self.version is None:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class Registry:
    """Versions and the promoted pointer under `models_dir` (the state directory's `models/`)."""

    def __init__(self, models_dir: str | Path) -> None:
        self.models_dir = Path(models_dir)

    def series_dir(self, symbol: str, timeframe: str) -> Path:
        return self.models_dir / series_key(symbol) / timeframe

    def version_dir(self, symbol: str, timeframe: str, version: str) -> Path:
        return self.series_dir(symbol, timeframe) / version

    @contextmanager
    def locked(self, symbol: str, timeframe: str) -> Iterator[Path]:
        """Exclusive writer lock for one series (promotions, commits and pruning never interleave)."""
        series = self.series_dir(symbol, timeframe)
        series.mkdir(parents=True, exist_ok=True)
        with open(series / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield series
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- reading -------------------------------------------------------------------------------------

    def pointer(self, symbol: str, timeframe: str) -> dict[str, Any]:
        """The pointer file's content: {"version": str | None, "history": [...], "updated_at": ...}."""
        path = self.series_dir(symbol, timeframe) / POINTER_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": None, "history": []}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{path}: unreadable promoted-version pointer: {exc}") from None
        if not isinstance(data, dict) or not (data.get("version") is None or _is_version(data["version"])):
            raise RegistryError(f"{path}: not a promoted-version pointer")
        history = data.setdefault("history", [])
        if not isinstance(history, list) or not all(_is_version(v) for v in history):
            raise RegistryError(f"{path}: the history of earlier champions holds something that is not a version "
                                "name (vNNNN)")
        return data

    def promoted(self, symbol: str, timeframe: str) -> str | None:
        """The champion's version name, or None when no model was ever promoted."""
        return self.pointer(symbol, timeframe)["version"]

    def promoted_meta(self, symbol: str, timeframe: str) -> dict[str, Any] | None:
        """The champion's meta.json (None: no champion, or its meta.json is unreadable)."""
        return next((info.meta for info in self.versions(symbol, timeframe) if info.promoted), None)

    def versions(self, symbol: str, timeframe: str) -> list[VersionInfo]:
        """Every complete version, oldest first, with its meta.json (or the reason it cannot be read)."""
        series = self.series_dir(symbol, timeframe)
        if not series.is_dir():
            return []
        champion = self.promoted(symbol, timeframe)
        out = []
        for path in sorted((p for p in series.iterdir() if _VERSION_RE.match(p.name) and p.is_dir()),
                           key=lambda p: version_number(p.name)):
            meta, error = None, None
            try:
                meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                error = f"meta.json unreadable: {exc}"
            out.append(VersionInfo(path.name, path, meta, path.name == champion, error))
        return out

    def _last_number(self, series: Path) -> int:
        numbers = [version_number(p.name) for p in series.iterdir() if _VERSION_RE.match(p.name)]
        try:
            numbers.append(int((series / COUNTER_FILE).read_text().strip()))
        except (FileNotFoundError, ValueError):
            pass
        return max(numbers, default=0)

    # -- writing -------------------------------------------------------------------------------------

    def stage(self, symbol: str, timeframe: str) -> Staging:
        """A fresh temporary folder for a version under construction."""
        series = self.series_dir(symbol, timeframe)
        series.mkdir(parents=True, exist_ok=True)
        path = series / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir()
        return Staging(self, symbol, timeframe, path)

    def _write_pointer(self, series: Path, version: str | None, history: list[str]) -> None:
        payload = {"version": version, "history": history[:HISTORY_LIMIT], "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_atomic(series / POINTER_FILE, (json.dumps(payload, indent=2) + "\n").encode())

    def _require(self, series: Path, version: str, symbol: str, timeframe: str) -> None:
        if not (series / version).is_dir():
            raise VersionNotFound(f"no version {version} of {symbol} {timeframe} in {series}")

    def promote(self, symbol: str, timeframe: str, version: str, *, expected: str | None | object = ...) -> str | None:
        """Make `version` the champion (atomically); returns the previous champion.

        With `expected`, a compare-and-swap: ChampionChanged unless the champion is still `expected`
        (a retrain compared itself with one champion and must not replace another)."""
        with self.locked(symbol, timeframe) as series:
            self._require(series, version, symbol, timeframe)
            current = self.pointer(symbol, timeframe)
            previous = current["version"]
            if expected is not ... and previous != expected:
                raise ChampionChanged(expected, previous)  # type: ignore[arg-type]
            if previous == version:
                return previous
            history = [v for v in [previous, *current["history"]] if v and v != version]
            self._write_pointer(series, version, history)
            return previous

    def rollback_target(self, symbol: str, timeframe: str) -> str | None:
        """The version `rollback` would restore: the newest earlier champion still on disk."""
        series = self.series_dir(symbol, timeframe)
        return next((v for v in self.pointer(symbol, timeframe)["history"] if (series / v).is_dir()), None)

    def rollback(self, symbol: str, timeframe: str) -> str:
        """Move the pointer back to the previous champion still on disk; returns its name."""
        with self.locked(symbol, timeframe) as series:
            current = self.pointer(symbol, timeframe)
            history = [v for v in current["history"] if (series / v).is_dir()]
            if not history:
                what = f"champion {current['version']}" if current["version"] else "no champion"
                raise NothingToRollBack(f"cannot roll back {symbol} {timeframe}: {what} and no previous champion on disk")
            self._write_pointer(series, history[0], history[1:])
            return history[0]

    def prune(self, symbol: str, timeframe: str, keep_candidates: int) -> list[str]:
        """Retention: delete versions other than the champion, the previous champion and the newest N."""
        removed: list[str] = []
        with self.locked(symbol, timeframe) as series:
            pointer = self.pointer(symbol, timeframe)
            names = sorted((p.name for p in series.iterdir() if _VERSION_RE.match(p.name)), key=version_number)
            keep = set(names[len(names) - keep_candidates:] if keep_candidates > 0 else [])
            keep.update(v for v in [pointer["version"], *pointer["history"][:1]] if v)
            for name in names:
                if name not in keep:
                    trash = series / f"{TRASH_PREFIX}{name}-{secrets.token_hex(4)}"
                    os.rename(series / name, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                    removed.append(name)
            for leftover in series.iterdir():
                if _stale_staging(leftover.name) or leftover.name.startswith(TRASH_PREFIX):
                    shutil.rmtree(leftover, ignore_errors=True)
            if removed:
                fsync_dir(series)
        return removed

    # -- what `models` shows -------------------------------------------------------------------------

    def listing(self, symbol: str, timeframe: str) -> dict[str, Any]:
        """Versions with their metrics and which is promoted (the CLI and the control socket both answer this)."""
        pointer = self.pointer(symbol, timeframe)
        rows = [_version_row(info) for info in self.versions(symbol, timeframe)]
        return {"symbol": symbol, "timeframe": timeframe, "promoted": pointer["version"],
                "history": pointer["history"], "versions": rows, "series_dir": str(self.series_dir(symbol, timeframe))}


def _version_row(info: VersionInfo) -> dict[str, Any]:
    meta = info.meta or {}
    evaluation = meta.get("evaluation") or {}
    return {
        "version": info.version, "promoted": info.promoted, "created_at": meta.get("created_at"),
        "error": info.error, "feature_set_version": meta.get("feature_set_version"),
        "seq_len": meta.get("seq_len"), "horizon": meta.get("horizon"),
        "trained_until": (meta.get("data") or {}).get("trained_until"),
        "made_by": {key: (meta.get("training") or {}).get(key) for key in ("kind", "warm_start_from")},
        "metrics": {k: evaluation.get(k) for k in ("challenger", "champion", "baseline")},
        "decision": meta.get("decision"), "sha256": (meta.get("onnx") or {}).get("sha256"),
    }
