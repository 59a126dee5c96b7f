"""The configuration's schema: every section and key, its type, bounds and default (pydantic).

`config.yaml` at the repository's top level mirrors these defaults exactly (a test checks). Unknown
keys are refused (`extra="forbid"`), sections are frozen once built; `foundation.config` reads,
validates and resolves a file into a `Config`.

Every value accepted here must survive the children's hand-over unchanged: the supervisor writes the
resolved config as JSON and each child validates it again. So numbers are finite (JSON has no inf or
NaN; pydantic would write `null` and the child refuse it) and bounded above, booleans are not numbers,
strings hold no NUL or lone surrogate (not UTF-8), and `exchange_params` holds only JSON values.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from autoretrain.daemon.foundation.config_values import INT64_MAX, check_json_value, check_strings, is_number
from autoretrain.daemon.foundation.timeframes import parse_iso_ms, timeframe_ms

_SYMBOL_RE = re.compile(r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$")


_EARLIEST_START_MS = 31_536_000_000  # 1971-01-01: candles at or before the epoch are refused as invalid
LATEST_START_MS = 32_503_680_000_000  # 3000-01-01: far enough, and far from datetime's year 9999


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_value(cls, value: Any, info: ValidationInfo) -> Any:
        """Booleans are not numbers (`epochs: true` is not 1); strings must be writable as UTF-8 JSON."""
        annotation = cls.model_fields[info.field_name].annotation if info.field_name in cls.model_fields else None
        if isinstance(value, bool) and is_number(annotation):
            raise ValueError("must be a number, not a boolean")
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):  # a section checks its own
            check_strings(value)
        return value


def _check_timeframe(value: str) -> str:
    timeframe_ms(value)
    return value


def check_symbol(value: str) -> str:
    if not _SYMBOL_RE.match(value):
        raise ValueError(f"invalid symbol {value!r}: expected BASE/QUOTE such as BTC/USDT")
    return value


class RetryConfig(_Section):
    attempts: int = Field(6, ge=1, le=100)
    base_delay: float = Field(0.5, gt=0, le=60)
    max_delay: float = Field(30.0, gt=0, le=3600)


class RegimeConfig(_Section):
    kind: Literal["momentum", "mean_reversion", "random_walk"]
    candles: int = Field(ge=10, le=10_000_000)
    strength: float = Field(0.5, ge=0.0, lt=1.0)
    volatility: float | None = Field(None, gt=0, le=0.2)


class SimulatedConfig(_Section):
    seed: int = Field(7, ge=-INT64_MAX, le=INT64_MAX)
    speed: float = Field(3600.0, gt=0, le=10_000_000)
    start: str = "2024-01-01T00:00:00Z"
    history_candles: int = Field(1200, ge=0, le=1_000_000)
    start_price: float = Field(30000.0, ge=1e-8, le=1e9)
    volatility: float = Field(0.01, gt=0, le=0.2)
    regimes: list[RegimeConfig] = Field(
        default_factory=lambda: [
            RegimeConfig(kind="momentum", candles=1500, strength=0.5),
            RegimeConfig(kind="mean_reversion", candles=1500, strength=0.5),
        ],
        min_length=1,
    )

    @field_validator("start", mode="before")
    @classmethod
    def _yaml_timestamp_as_text(cls, value: Any) -> Any:
        """An unquoted `start: 2024-01-01` is a date to YAML; it means the same as the quoted text."""
        return value.isoformat() if isinstance(value, (date, datetime)) else value

    @field_validator("start")
    @classmethod
    def _start_is_iso(cls, value: str) -> str:
        try:
            start_ms = parse_iso_ms(value)
        except OverflowError:
            start_ms = -1
        if not _EARLIEST_START_MS <= start_ms < LATEST_START_MS:
            raise ValueError("must lie between 1971-01-01 and 3000-01-01")
        return value


class ReplayConfig(_Section):
    speed: float = Field(3600.0, gt=0, le=10_000_000)
    history_candles: int = Field(2000, ge=0, le=1_000_000)


class MarketConfig(_Section):
    source: Literal["ccxt", "csv", "simulated"] = "ccxt"
    exchange: str = Field("binance", pattern=r"^[a-z0-9_]+$")
    exchange_params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str] = Field(default_factory=lambda: ["BTC/USDT"], min_length=1)
    timeframe: str = "1h"
    csv: dict[str, str] = Field(default_factory=dict)
    simulated: SimulatedConfig = Field(default_factory=SimulatedConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    backfill_days: float | None = Field(None, gt=0, le=3650)
    page_limit: int = Field(1000, ge=1, le=5000)
    poll_interval: float = Field(5.0, gt=0, le=3600)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @field_validator("timeframe")
    @classmethod
    def _timeframe_valid(cls, value: str) -> str:
        return _check_timeframe(value)

    @field_validator("exchange_params")
    @classmethod
    def _exchange_params_typed(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The ccxt constructor keys people set most, checked here rather than failing deep inside ccxt."""
        expected: dict[str, tuple[type, ...]] = {
            "timeout": (int, float), "rateLimit": (int, float), "enableRateLimit": (bool,), "apiKey": (str,),
            "secret": (str,), "password": (str,), "uid": (str,), "urls": (dict,), "options": (dict,),
            "headers": (dict,), "proxies": (dict,), "verbose": (bool,), "sandbox": (bool,),
        }
        for key, types in expected.items():
            if key in value and (not isinstance(value[key], types) or
                                 (types == (int, float) and isinstance(value[key], bool))):
                names = " or ".join(t.__name__ for t in types)
                raise ValueError(f"{key} must be {names}, not {type(value[key]).__name__} ({value[key]!r})")
        check_json_value(value)  # handed to the children as JSON, then to ccxt
        if "timeout" in value and not 0 < value["timeout"] <= 3_600_000:
            raise ValueError(f"timeout must be positive milliseconds, at most an hour, not {value['timeout']!r}")
        if "rateLimit" in value and not 0 <= value["rateLimit"] <= 600_000:
            raise ValueError(f"rateLimit must be 0 to 600000 milliseconds, not {value['rateLimit']!r}")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols_valid(cls, value: list[str]) -> list[str]:
        for symbol in value:
            check_symbol(symbol)
        if len(set(value)) != len(value):
            raise ValueError("symbols must be unique")
        return value

    @model_validator(mode="after")
    def _csv_for_every_symbol(self) -> MarketConfig:
        if self.source == "csv":
            missing = [s for s in self.symbols if s not in self.csv]
            if missing:
                raise ValueError(f"source is csv but market.csv has no file for {', '.join(missing)}")
        return self


class PathsConfig(_Section):
    state_dir: str = "./var"
    runtime_dir: str | None = None


Trigger = Literal["performance", "drift", "losing_money"]
DEFAULT_TRIGGERS: tuple[Trigger, ...] = ("drift", "losing_money")  # the guide's `performance`: by choice


class AutoTrainingConfig(_Section):
    enabled: bool = True
    min_trades_before_retrain: int = Field(50, ge=0, le=1_000_000_000)
    max_days_between_retrain: float = Field(30, gt=0, le=3650)
    min_win_rate_threshold: float = Field(0.45, ge=0, le=1)
    min_signals: int = Field(20, ge=0, le=1_000_000_000)
    first_model_signals: int = Field(100, ge=0, le=1_000_000_000)  # 10**9: never (the backtest schedule)
    win_rate_scope: Literal["current_model", "rolling", "cumulative"] = "current_model"
    rolling_window: int = Field(100, ge=1, le=1_000_000_000)
    cooldown_hours: float = Field(12.0, ge=0, le=8760)
    cooldown_max_factor: float = Field(8.0, ge=1, le=1000)
    max_retrains_per_day: int = Field(4, ge=1, le=1000)
    train_at_start: bool = True
    triggers: list[Trigger] = Field(default_factory=lambda: list(DEFAULT_TRIGGERS))
    drift_shift: float = Field(0.10, gt=0, lt=0.5)
    drift_threshold: float = Field(8.0, gt=0, le=100)
    money_t: float = Field(-2.0, lt=0, ge=-20)
    bench_t: float = Field(-2.5, lt=0, ge=-20)

    @model_validator(mode="after")
    def _window_can_judge(self) -> AutoTrainingConfig:
        if self.rolling_window < self.min_signals:
            raise ValueError(f"rolling_window ({self.rolling_window}) must be at least min_signals "
                             f"({self.min_signals}): a smaller window never holds enough signals to judge")
        return self


class ModelConfig(_Section):
    seq_len: int = Field(32, ge=2, le=1024)
    horizon: int = Field(1, ge=1, le=1000)
    hidden_size: int = Field(32, ge=1, le=4096)
    num_layers: int = Field(1, ge=1, le=8)
    dropout: float = Field(0.0, ge=0, lt=1)


class TrainingConfig(_Section):
    days: float = Field(180, gt=0, le=3650)
    epochs: int = Field(50, ge=1, le=10_000)
    patience: int = Field(10, ge=1, le=10_000)
    min_candles: int = Field(1000, ge=1, le=10_000_000)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(128, ge=1, le=65536)
    learning_rate: float = Field(0.002, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    validation_fraction: float = Field(0.2, gt=0, lt=0.9)
    threads: int = Field(2, ge=1, le=256)
    nice: int = Field(10, ge=0, le=19)
    timeout: float = Field(7200.0, ge=1, le=604_800)  # seconds a retrain job may take: then it fails
    seed: int = Field(42, ge=0, le=2**32 - 1)  # torch and numpy both take it
    warm_start: bool = True
    warm_start_epochs: int = Field(10, ge=1, le=10_000)
    warm_start_candles: int = Field(2000, ge=100, le=10_000_000)


class PromotionConfig(_Section):
    rule: Literal["tested", "guide"] = "tested"
    min_improvement: float = Field(0.0, ge=0, le=1)
    require_significance: bool = False
    significance_level: float = Field(0.05, gt=0, lt=1)
    eval_candles: int = Field(500, ge=20, le=1_000_000)
    min_eval_samples: int = Field(100, ge=1, le=1_000_000)
    parity_tolerance: float = Field(1e-4, gt=0, le=1)
    keep_candidates: int = Field(5, ge=0, le=10_000)


class AlgorithmWeights(_Section):
    rsi: float = Field(1.0, ge=0, le=1000)
    macd: float = Field(1.0, ge=0, le=1000)
    ma_cross: float = Field(1.0, ge=0, le=1000)
    bollinger: float = Field(1.0, ge=0, le=1000)


class SignalsConfig(_Section):
    confidence_threshold: float = Field(0.55, ge=0.5, le=1)
    fee_bps: float = Field(10.0, ge=0, le=1000)
    model_weight: float = Field(2.0, ge=0, le=1000)
    algorithms: AlgorithmWeights = Field(default_factory=AlgorithmWeights)
    performance_window: int = Field(100, ge=1, le=10_000_000)


class ControlConfig(_Section):
    endpoint: str | None = None
    timeout_ms: int = Field(5000, ge=10, le=600_000)
    retries: int = Field(3, ge=1, le=100)
    max_request_bytes: int = Field(65536, ge=256, le=64 << 20)  # libzmq takes a 64-bit size; 64 MiB is plenty

    @field_validator("endpoint")
    @classmethod
    def _endpoint_allowed(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("ipc://@"):
            raise ValueError("abstract-namespace sockets (ipc://@...) are refused: their permissions mean nothing")
        if value.startswith("ipc://"):
            return value
        match = re.match(r"^tcp://(127\.0\.0\.1|localhost|\[::1\]):([0-9]{1,5})$", value)
        if not match:
            raise ValueError("endpoint must be ipc://PATH or tcp://127.0.0.1:PORT (loopback only)")
        if not 1 <= int(match.group(2)) <= 65535:
            raise ValueError(f"port {match.group(2)} is not a TCP port (1 to 65535)")
        return value


def check_http_endpoint(value: str | None) -> str | None:
    """`HOST:PORT` for an HTTP listener (`[ADDR]:PORT` for IPv6); port 0 lets the system choose (status says
    which). Any address is allowed (Prometheus may scrape from another host); the default is loopback."""
    if value is None:
        return value
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})", value)
    if not match:
        raise ValueError(f"{value!r} is not HOST:PORT (such as 127.0.0.1:9477; null turns it off)")
    if int(match.group(2)) > 65535:
        raise ValueError(f"port {match.group(2)} is not a TCP port (0 to 65535)")
    return value


class MetricsConfig(_Section):
    endpoint: str | None = "127.0.0.1:9477"

    _endpoint_ok = field_validator("endpoint")(check_http_endpoint)


class DashboardConfig(_Section):
    endpoint: str | None = "127.0.0.1:8477"
    refresh_seconds: float = Field(5.0, ge=1, le=3600)
    history_candles: int = Field(500, ge=10, le=100_000)

    _endpoint_ok = field_validator("endpoint")(check_http_endpoint)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str | None = None


class SupervisorConfig(_Section):
    restart_backoff_initial: float = Field(1.0, gt=0, le=3600)
    restart_backoff_max: float = Field(30.0, gt=0, le=86_400)
    max_restarts: int = Field(5, ge=0, le=10_000)
    restart_window: float = Field(120.0, gt=0, le=86_400)
    ready_timeout: float = Field(120.0, gt=0, le=86_400)
    stop_timeout: float = Field(20.0, gt=0, le=3600)
    child_timeout: float = Field(60.0, ge=5, le=86_400)


class IngestConfig(_Section):
    ring_capacity: int = Field(512, ge=64, le=1_000_000)


class InferenceConfig(_Section):
    model_check_interval: float = Field(10.0, gt=0, le=3600)
    threads: int = Field(1, ge=1, le=64)


class Config(_Section):
    market: MarketConfig = Field(default_factory=MarketConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    auto_training: AutoTrainingConfig = Field(default_factory=AutoTrainingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    heartbeat_interval: float = Field(300.0, gt=0, le=86_400)
    control: ControlConfig = Field(default_factory=ControlConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    @property
    def state_dir(self) -> Path:
        return Path(self.paths.state_dir)

    @property
    def runtime_dir(self) -> Path:
        return Path(self.paths.runtime_dir or Path(self.paths.state_dir) / "run")

    @property
    def db_path(self) -> Path:
        return self.state_dir / "autoretrain.db"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def control_endpoint(self) -> str:
        return self.control.endpoint or f"ipc://{self.runtime_dir / 'control.sock'}"

    @property
    def store_exchange(self) -> str:
        """The exchange part of the candle store key for the configured source."""
        return "simulated" if self.market.source == "simulated" else self.market.exchange
