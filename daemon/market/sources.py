"""Market sources behind one interface (`CandleSource`): ccxt exchanges, CSV replay, simulated market."""

from __future__ import annotations

from pathlib import Path

from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.market.base import Batch, CandleSource, Hole
from autoretrain.daemon.market.clock import ClockAnchor
from autoretrain.daemon.market.retry import Backoff


def open_source(config: Config, *, anchor: ClockAnchor | None = None,
                exchange_clock: Path | None = None) -> CandleSource:
    """The source `market.source` names, built from the configuration (an accelerated market's clock from
    `anchor`; a real exchange's clock readings shared in `exchange_clock`: ingest's alone)."""
    market = config.market
    if market.source == "simulated":
        from autoretrain.daemon.market.simulated import SimulatedSource

        return SimulatedSource(market.simulated, market.timeframe, anchor=anchor)
    if market.source == "csv":
        from autoretrain.daemon.market.csv_replay import CsvReplaySource

        return CsvReplaySource(market.csv, market.timeframe, market.replay, exchange=config.store_exchange,
                               anchor=anchor)
    from autoretrain.daemon.market.ccxt_source import CcxtSource

    retry = market.retry
    return CcxtSource(market.exchange, market.exchange_params,
                      backoff=Backoff(retry.attempts, retry.base_delay, retry.max_delay), page_limit=market.page_limit,
                      clock_refresh_s=market.poll_interval, clock_file=exchange_clock)


__all__ = ["Batch", "CandleSource", "Hole", "open_source"]
