"""A cumulative latency histogram a child keeps and reports (Prometheus buckets, in seconds).

Inference observes, for every signal it makes, the wall time from its candle's close to the signal being
recorded and published; it sends the buckets in its liveness report and the supervisor exports them as
`autoretrain_signal_latency_seconds`. Counts restart with the process, as a Prometheus histogram may.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

#: upper bounds of the buckets: milliseconds for a live candle, minutes for a catch-up after downtime
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class LatencyHistogram:
    def __init__(self, buckets: tuple[float, ...] = BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: over every bound (+Inf)
        self.total_s = 0.0

    def observe(self, seconds: float) -> None:
        if not math.isfinite(seconds):
            return
        seconds = max(0.0, seconds)  # a clock read a hair early is no negative latency
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total_s += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def as_dict(self) -> dict[str, Any]:
        """Cumulative counts per upper bound (`le`, "+Inf" last), the sum and the count, as JSON."""
        cumulative, running = [], 0
        for bound, count in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            running += count
            cumulative.append([bound, running])
        return {"buckets": cumulative, "sum_s": round(self.total_s, 6), "count": running}
