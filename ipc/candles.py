"""The binary record of one candle: how the shared-memory rings hold it and how every candle array is laid out.

`CANDLE_DTYPE` is the project's one definition: open time in ms UTC (int64), then open, high, low,
close and volume (float64), little endian, 48 bytes. A batch of candles is a 1-D structured numpy
array of it, oldest first. It belongs to the wire because a ring's readers and writer in different
processes must agree on it byte for byte.
"""

from __future__ import annotations

import numpy as np

CANDLE_DTYPE = np.dtype(
    [("ts", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"), ("volume", "<f8")]
)
