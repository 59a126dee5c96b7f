"""Every value the supervisor accepts is one its children accept too, unchanged.

The supervisor validates the file, then hands the resolved configuration to each child as JSON
(`write_resolved_config` / `read_resolved_config`), and the child validates it again. A value one side
takes and the other refuses is a crash loop (the probe's `.inf` cooldown), so what JSON cannot carry is
refused where the file is first read, with exit 78 and the key path. The schema is walked, so a key
added later is held to the same rules.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from autoretrain.daemon.foundation.config import build_config, load_config
from autoretrain.daemon.foundation.config_schema import Config, RegimeConfig
from autoretrain.daemon.foundation.config_values import is_number
from autoretrain.daemon.foundation.errors import EX_CONFIG, ConfigError
from autoretrain.daemon.processes.child import read_resolved_config, write_resolved_config
from tests.support.data import ROOT

Path_ = tuple[str | int, ...]


def number_fields() -> list[tuple[Path_, FieldInfo]]:
    """(key path, field) for every int or float key of the schema, a simulated regime's included."""
    found: list[tuple[Path_, FieldInfo]] = []

    def walk(model: type[BaseModel], prefix: Path_) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, (*prefix, name))
            elif is_number(annotation):
                found.append(((*prefix, name), field))

    walk(Config, ())
    walk(RegimeConfig, ("market", "simulated", "regimes", 0))
    return found


NUMBERS = number_fields()


def key_name(path: Path_) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else ("." if i else "") + part for i, part in enumerate(path))


def nested(path: Path_, value: Any) -> dict[str, Any]:
    """The mapping a YAML file would hold to set `path` to `value` (a regime gets its required keys)."""
    if path[:4] == ("market", "simulated", "regimes", 0):
        regime = {"kind": "momentum", "candles": 1500, path[4]: value}
        return {"market": {"simulated": {"regimes": [regime]}}}
    data: Any = value
    for part in reversed(path):
        data = {part: data}
    return data


def bounds(field: FieldInfo) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                found[name] = getattr(item, name)
    return found


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        build_config(data, env={})
    assert caught.value.exit_code == EX_CONFIG and "\n" not in str(caught.value)
    return str(caught.value)


def test_the_walk_finds_the_keys_of_every_section() -> None:
    names = {key_name(path) for path, _ in NUMBERS}
    assert {"heartbeat_interval", "auto_training.cooldown_hours", "auto_training.max_days_between_retrain",
            "market.simulated.start_price", "control.max_request_bytes", "training.epochs",
            "market.simulated.regimes[0].strength", "supervisor.child_timeout"} <= names
    assert len(NUMBERS) > 70


@pytest.mark.parametrize(("text", "key"), [
    ("auto_training:\n  cooldown_hours: .inf\n", "auto_training.cooldown_hours"),
    ("heartbeat_interval: .inf\n", "heartbeat_interval"),
    ("auto_training:\n  max_days_between_retrain: .inf\n", "auto_training.max_days_between_retrain"),
    ("market:\n  simulated:\n    start_price: .inf\n", "market.simulated.start_price"),
    ("auto_training:\n  cooldown_hours: .nan\n", "auto_training.cooldown_hours"),
    ("training:\n  days: -.inf\n", "training.days"),
    ("market:\n  backfill_days: .NaN\n", "market.backfill_days"),
])
def test_the_probes_infinite_values_are_refused_where_the_file_is_read(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert f"{path}: {key}: Input should be a finite number" in str(caught.value)


@pytest.mark.parametrize("path", [path for path, field in NUMBERS if field.annotation is not int], ids=key_name)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_no_float_key_takes_a_value_json_cannot_carry(path: Path_, value: float) -> None:
    assert f": {key_name(path)}: " in refusal(nested(path, value))


@pytest.mark.parametrize("path", [path for path, _ in NUMBERS], ids=key_name)
def test_a_boolean_is_not_a_number(path: Path_) -> None:
    message = refusal(nested(path, True))
    assert f": {key_name(path)}: must be a number, not a boolean" in message


@pytest.mark.parametrize("path, field", NUMBERS, ids=[key_name(path) for path, _ in NUMBERS])
def test_every_number_has_an_upper_bound_and_values_past_it_are_refused(path: Path_, field: FieldInfo) -> None:
    limits = bounds(field)
    assert "le" in limits or "lt" in limits, f"{key_name(path)} has no upper bound"
    beyond = 2**64 if field.annotation is int else 1e300
    assert f": {key_name(path)}: Input should be less than" in refusal(nested(path, beyond))


def edge_values(field: FieldInfo) -> list[float]:
    """The smallest and largest value each bound allows."""
    limits = bounds(field)
    whole = field.annotation is int
    values = []
    if "ge" in limits:
        values.append(limits["ge"])
    if "gt" in limits:
        values.append(limits["gt"] + 1 if whole else math.nextafter(limits["gt"], math.inf))
    if "le" in limits:
        values.append(limits["le"])
    if "lt" in limits:
        values.append(limits["lt"] - 1 if whole else math.nextafter(limits["lt"], -math.inf))
    return values


def test_every_accepted_edge_value_round_trips_through_the_childrens_hand_over(tmp_path: Path) -> None:
    accepted = 0
    for path, field in NUMBERS:
        for value in edge_values(field):
            try:
                config = build_config(nested(path, value), base=tmp_path, env={})
            except ConfigError:
                continue  # refused by a check across keys (min_signals above rolling_window, ...): never handed over
            accepted += 1
            handed = read_resolved_config(write_resolved_config(config, tmp_path))
            assert handed == config, key_name(path)
    assert accepted > len(NUMBERS)  # most edges are accepted on their own


def test_text_and_free_form_parameters_round_trip_unchanged(tmp_path: Path) -> None:
    data = {
        "paths": {"state_dir": str(tmp_path / "état ☃ 状态")},
        "logging": {"file": "logs/trading ✓.log"},
        "market": {"exchange_params": {"apiKey": "clé-🔑", "timeout": 30000, "rateLimit": 0.5,
                                       "options": {"defaultType": "spot", "limits": [1, 2.5, None, True, -(2**63 - 1)],
                                                   "nested": {"deeper": {"x": 1e-300}}}}},
        "control": {"endpoint": "tcp://127.0.0.1:65535"},
    }
    config = build_config(data, base=tmp_path, env={})
    path = write_resolved_config(config, tmp_path)
    assert read_resolved_config(path) == config
    # the child reads it the same under a C locale, where text files default to ASCII
    probe = ("import sys; from pathlib import Path; from autoretrain.daemon.processes.child import read_resolved_config;"
             " c = read_resolved_config(Path(sys.argv[1])); print(c.paths.state_dir, c.market.exchange_params['apiKey'])")
    result = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, cwd=ROOT, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
                                 "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == [*config.paths.state_dir.split(), "clé-🔑"]


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("market:\n  exchange_params: {since: 2024-01-01}\n", "market.exchange_params", "since: a date"),
    ("market:\n  exchange_params: {secret: !!binary aGVsbG8=}\n", "market.exchange_params", "secret must be str"),
    ("market:\n  exchange_params: {options: {blob: !!binary aGVsbG8=}}\n", "market.exchange_params", "options.blob: a bytes"),
    ("market:\n  exchange_params: {options: !!set {a, b}}\n", "market.exchange_params", "options must be dict"),
    ("market:\n  exchange_params: {options: {x: .nan}}\n", "market.exchange_params", "options.x: nan is not a finite"),
    ("market:\n  exchange_params: {options: {1: a}}\n", "market.exchange_params", "options: key 1 is not a string"),
    ("market:\n  exchange_params: {options: {x: 99999999999999999999}}\n", "market.exchange_params",
     "options.x: integer out of range"),
    ("market:\n  exchange_params: {timeout: 1.0e+300}\n", "market.exchange_params", "at most an hour"),
    ("market:\n  exchange_params: {rateLimit: -1}\n", "market.exchange_params", "rateLimit must be 0 to 600000"),
    ('market:\n  exchange_params: {apiKey: "\\ud800"}\n', "market.exchange_params", "lone surrogate"),
    ('paths:\n  state_dir: "a\\0b"\n', "paths.state_dir", "contains a NUL character"),
    ('logging:\n  file: "\\udcff.log"\n', "logging.file", "lone surrogate"),
    ("training:\n  epochs: true\n", "training.epochs", "must be a number, not a boolean"),
    ("control:\n  endpoint: tcp://127.0.0.1:99999\n", "control.endpoint", "port 99999 is not a TCP port"),
    ("control:\n  endpoint: tcp://127.0.0.1:0\n", "control.endpoint", "port 0 is not a TCP port"),
    ("control:\n  endpoint: tcp://127.0.0.1:123456\n", "control.endpoint", "loopback only"),
    ("control:\n  max_request_bytes: 99999999999999999999999\n", "control.max_request_bytes", "less than or equal to 67108864"),
    ("control:\n  max_request_bytes: 67108865\n", "control.max_request_bytes", "less than or equal to 67108864"),
    ("market:\n  simulated:\n    start: 0001-01-01T00:00:00+05:00\n", "market.simulated.start", "between 1971-01-01 and 3000"),
    ("market:\n  simulated:\n    start: '9999-12-31T23:00:00Z'\n", "market.simulated.start", "between 1971-01-01 and 3000"),
    ("market:\n  simulated:\n    start: '1970-01-01'\n", "market.simulated.start", "between 1971-01-01 and 3000"),
    ("market:\n  source: simulated\n  timeframe: 1w\n  simulated:\n    start: '2990-01-01'\n"
     "training:\n  days: 3650\n  min_candles: 100\n", "market.simulated.history_candles", "reach past the year 3000"),
])
def test_values_the_children_could_not_take_are_refused_with_the_key(tmp_path: Path, text: str, key: str,
                                                                     problem: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert f"{path}: {key}: " in message and problem in message, message
    assert "\n" not in message


def test_the_largest_values_still_allowed_are_accepted(tmp_path: Path) -> None:
    config = build_config({"control": {"max_request_bytes": 64 << 20, "endpoint": "tcp://127.0.0.1:1"},
                           "market": {"simulated": {"start": "2999-12-31T00:00:00Z", "history_candles": 0}}},
                          env={})
    assert config.control.max_request_bytes == 67_108_864 and config.control_endpoint == "tcp://127.0.0.1:1"
