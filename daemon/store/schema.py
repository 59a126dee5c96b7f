"""The store's schema, as the list of migrations that build it (PRAGMA user_version counts them).

Each entry upgrades the schema by one version and runs in one transaction when a process opens the
store (`store.connection.connect`). Append, never edit: a store made by an older version upgrades
in place, and one made by a newer version is left as it is.
"""

from __future__ import annotations

# Each entry upgrades the schema by one version (PRAGMA user_version). Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        UNIQUE (exchange, symbol, timeframe)
    );
    CREATE TABLE candles (
        series_id INTEGER NOT NULL REFERENCES series(id),
        ts INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        PRIMARY KEY (series_id, ts)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE retrain_runs (
        id INTEGER PRIMARY KEY,
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        trigger TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        requested_market_ts INTEGER,
        data_end_ts INTEGER,
        started_at REAL NOT NULL,
        finished_at REAL,
        version TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX retrain_runs_series ON retrain_runs (exchange, symbol, timeframe, id);
    """,
    # store.signals: one signal per closed candle, its outcome, and which model served since when.
    """
    CREATE TABLE signals (
        id INTEGER PRIMARY KEY,
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        candle_ts INTEGER NOT NULL,
        price REAL NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
        confidence REAL NOT NULL,
        probability_up REAL NOT NULL,
        model_version TEXT,
        model_probability REAL,
        algo_action TEXT NOT NULL CHECK (algo_action IN ('BUY', 'SELL', 'HOLD')),
        algo_probability REAL NOT NULL,
        components TEXT NOT NULL DEFAULT '{}',
        pending INTEGER NOT NULL DEFAULT 1,
        recorded_at REAL NOT NULL,
        UNIQUE (exchange, symbol, timeframe, candle_ts)
    );
    CREATE INDEX signals_pending ON signals (exchange, symbol, timeframe, candle_ts) WHERE pending = 1;
    CREATE TABLE outcomes (
        signal_id INTEGER PRIMARY KEY REFERENCES signals(id),
        exit_ts INTEGER NOT NULL,
        exit_price REAL NOT NULL,
        return_pct REAL NOT NULL,
        correct INTEGER,
        pnl_pct REAL,
        algo_correct INTEGER,
        algo_pnl_pct REAL,
        horizon INTEGER NOT NULL,
        fee_bps REAL NOT NULL,
        settled_at REAL NOT NULL
    );
    CREATE TABLE model_activations (
        id INTEGER PRIMARY KEY,
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        version TEXT,
        market_ts INTEGER NOT NULL,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX model_activations_series ON model_activations (exchange, symbol, timeframe, id);
    """,
    """
    ALTER TABLE retrain_runs ADD COLUMN owner TEXT;
    """,
    # the model's own record beside the combined signal, the horizon each signal settles at, benched models
    """
    ALTER TABLE signals ADD COLUMN model_action TEXT CHECK (model_action IN ('BUY', 'SELL', 'HOLD'));
    ALTER TABLE signals ADD COLUMN model_in_vote INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE signals ADD COLUMN horizon INTEGER;
    ALTER TABLE outcomes ADD COLUMN model_correct INTEGER;
    ALTER TABLE outcomes ADD COLUMN model_pnl_pct REAL;
    ALTER TABLE model_activations ADD COLUMN benched INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE model_activations ADD COLUMN reason TEXT NOT NULL DEFAULT '';
    """,
]
