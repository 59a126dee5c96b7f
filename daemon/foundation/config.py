"""Configuration: schema with a default for every key, loading, environment overrides, one-line errors.

A config file may hold only what differs from the defaults. Unknown keys, wrong types and values out
of range are refused with the dotted key path (`training.epochs: must be >= 1 (got 0)`) as a
`ConfigError`, which every entry point turns into exit code 78 (EX_CONFIG).

Relative paths in a config file are resolved against the directory of that file, so a daemon started
from anywhere with `--config /srv/bot/config.yaml` finds the same state; without a file they are
resolved against the current directory. `$STATE_DIRECTORY` and `$RUNTIME_DIRECTORY` (set by systemd's
`StateDirectory=` / `RuntimeDirectory=`) override `paths.state_dir` and `paths.runtime_dir`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoretrain.daemon.foundation.config_file import check_config_file, parse_config_yaml, read_config_text
from autoretrain.daemon.foundation.config_schema import LATEST_START_MS, Config, PathsConfig
from autoretrain.daemon.foundation.errors import ConfigError
from autoretrain.daemon.foundation.timeframes import parse_iso_ms, timeframe_ms

CONFIG_ENV = "AUTORETRAIN_CONFIG"
DEFAULT_CONFIG_NAME = "config.yaml"


def _format_location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"


def _describe_error(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if "input" in error and kind not in {"missing"} and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return message


def _first_error(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors()
    error = errors[0]
    location = tuple(p for p in error.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
    extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _format_location(location), _describe_error(error) + extra


def _cross_checks(config: Config) -> tuple[str, str] | None:
    """Settings that are valid one by one but cannot work together: (key path, problem)."""
    most = int(config.training.days * 86_400_000 / timeframe_ms(config.market.timeframe))
    if most < config.training.min_candles:
        return "training.days", (f"{config.training.days:g} days hold at most {most} {config.market.timeframe} "
                                  f"candles, fewer than training.min_candles ({config.training.min_candles}): "
                                  "no retrain could ever succeed")
    promotion, model = config.promotion, config.model
    windows = promotion.eval_candles - (model.seq_len + model.horizon) + 1
    if windows < promotion.min_eval_samples:
        return "promotion.eval_candles", (f"{promotion.eval_candles} evaluation candles hold at most {max(0, windows)} "
                                          f"windows of seq_len + horizon ({model.seq_len} + {model.horizon}) candles, "
                                          f"fewer than promotion.min_eval_samples ({promotion.min_eval_samples}): "
                                          "no challenger could ever be judged")
    simulated = config.market.simulated
    if config.market.source == "simulated":
        now_ms = parse_iso_ms(simulated.start) + simulated.history_candles * timeframe_ms(config.market.timeframe)
        if now_ms >= LATEST_START_MS:
            return "market.simulated.history_candles", (f"{simulated.history_candles} {config.market.timeframe} candles "
                                                        f"after {simulated.start} reach past the year 3000")
    return None


_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


def _resolved_checks(config: Config) -> tuple[str, str] | None:
    """Checks that need absolute paths: socket path lengths, CSV files that must exist."""
    sockets = [("paths.runtime_dir", config.runtime_dir / "bus-out.sock")]
    if config.control_endpoint.startswith("ipc://"):
        sockets.append(("control.endpoint", Path(config.control_endpoint[len("ipc://"):])))
    for key, path in sockets:
        if len(os.fsencode(str(path))) > _MAX_SOCKET_PATH:
            return key, (f"socket path {path} is {len(os.fsencode(str(path)))} bytes; unix sockets allow "
                         f"{_MAX_SOCKET_PATH}: choose a shorter directory")
    if config.market.source == "csv":
        for symbol, csv_path in config.market.csv.items():
            if not Path(csv_path).is_file():
                return f"market.csv.{symbol}", f"no such file: {csv_path}"
    return None


def find_config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """`--config`, then `$AUTORETRAIN_CONFIG`, then ./config.yaml; None means built-in defaults."""
    for candidate, origin in ((explicit, "--config"), (env.get(CONFIG_ENV), f"${CONFIG_ENV}")):
        if candidate:
            return check_config_file(Path(candidate), origin)
    default = Path(DEFAULT_CONFIG_NAME)
    return check_config_file(default, "the current directory") if os.path.lexists(default) else None


def _read_yaml(path: Path) -> dict[str, Any]:
    data = parse_config_yaml(read_config_text(path), path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not {type(data).__name__}")
    return data


def _resolve(path_text: str, base: Path) -> str:
    path = Path(os.path.expanduser(path_text))
    return str(path if path.is_absolute() else (base / path).resolve())


def _with_resolved_paths(config: Config, base: Path, env: Mapping[str, str]) -> Config:
    state_env = (env.get("STATE_DIRECTORY") or "").split(":")[0]
    runtime_env = (env.get("RUNTIME_DIRECTORY") or "").split(":")[0]
    state_dir = _resolve(state_env or config.paths.state_dir, base)
    runtime_source = runtime_env or config.paths.runtime_dir
    runtime_dir = _resolve(runtime_source, base) if runtime_source else str(Path(state_dir) / "run")
    log_file = _resolve(config.logging.file, base) if config.logging.file else None
    csv_files = {symbol: _resolve(path, base) for symbol, path in config.market.csv.items()}
    return config.model_copy(
        update={
            "paths": PathsConfig(state_dir=state_dir, runtime_dir=runtime_dir),
            "logging": config.logging.model_copy(update={"file": log_file}),
            "market": config.market.model_copy(update={"csv": csv_files}),
        }
    )


def build_config(data: Mapping[str, Any], *, base: Path | None = None, env: Mapping[str, str] | None = None,
                 origin: str = "config") -> Config:
    """Validate a mapping (what a YAML file holds) into a Config with absolute paths."""
    env = os.environ if env is None else env
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as exc:
        key, problem = _first_error(exc)
        raise ConfigError(f"{origin}: {key}: {problem}", key_path=key) from None
    resolved = _with_resolved_paths(config, base or Path.cwd(), env)
    conflict = _cross_checks(config) or _resolved_checks(resolved)
    if conflict is not None:
        key, problem = conflict
        raise ConfigError(f"{origin}: {key}: {problem}", key_path=key)
    return resolved


def load_config(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Find, read and validate the configuration; raises ConfigError (exit 78) with the key path."""
    env = os.environ if env is None else env
    path = find_config_path(explicit, env)
    if path is None:
        return build_config({}, env=env, origin="built-in defaults")
    return build_config(_read_yaml(path), base=path.resolve().parent, env=env, origin=str(path))
