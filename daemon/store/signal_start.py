"""Where live signals begin for each symbol, remembered across restarts.

History fetched by the first backfill gets no signals: signals start with the first candle that
closes after the daemon first ran for a symbol. That point is written once, atomically, to
`<state_dir>/signal-start.json`; afterwards every candle after the last recorded signal is signalled,
including the ones that closed while the daemon was down.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from autoretrain.daemon.foundation.errors import StoreError

FILE_NAME = "signal-start.json"


class SignalStart:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / FILE_NAME

    def _read(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in json.loads(self.path.read_text()).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as exc:  # not JSON, not an object, not numbers
            raise StoreError(f"{self.path}: unreadable ({type(exc).__name__}: {exc}); delete it to restart "
                             "signals from the newest candle") from None

    def after(self, key: str, newest_stored_ts: int | None) -> int | None:
        """Open time after which candles get signals: remembered, or fixed now at the newest stored candle."""
        starts = self._read()
        if key in starts:
            return starts[key]
        if newest_stored_ts is None:
            return None
        starts[key] = int(newest_stored_ts)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(starts, indent=2, sort_keys=True))
        os.replace(temporary, self.path)
        return starts[key]
