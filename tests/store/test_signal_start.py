"""Where live signals begin: remembered once, and a damaged file is a clear error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoretrain.daemon.foundation.errors import StoreError
from autoretrain.daemon.store.signal_start import FILE_NAME, SignalStart


def test_the_start_is_fixed_once_and_remembered(tmp_path: Path) -> None:
    assert SignalStart(tmp_path).after("simulated|BTC/USDT|1h", None) is None
    assert SignalStart(tmp_path).after("simulated|BTC/USDT|1h", 1000) == 1000
    assert SignalStart(tmp_path).after("simulated|BTC/USDT|1h", 5000) == 1000  # a later start moves nothing
    assert SignalStart(tmp_path).after("simulated|ETH/USDT|1h", 7000) == 7000


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"simulated|BTC/USDT|1h": "x"}', '{"k": null}'])
def test_a_damaged_file_is_one_clear_error(tmp_path: Path, content: str) -> None:
    (tmp_path / FILE_NAME).write_text(content)
    with pytest.raises(StoreError) as raised:
        SignalStart(tmp_path).after("simulated|BTC/USDT|1h", 1000)
    message = str(raised.value)
    assert str(tmp_path / FILE_NAME) in message and "delete it" in message and "\n" not in message
    assert (tmp_path / FILE_NAME).read_text() == content  # left as it was, for the operator to look at
