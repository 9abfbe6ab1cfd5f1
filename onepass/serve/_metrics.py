"""Counters and latency histograms of the server, in the Prometheus text format.

Fixed memory: series are keyed by route (the known paths, or ``other``) and status.
Each worker process counts its own requests (``--workers N`` gives N sets of series,
told apart by the ``pid`` label; Prometheus sums them).
"""

from __future__ import annotations

import os
from bisect import bisect_left

__all__ = ["BUCKETS", "Metrics"]

# Seconds; the upper bounds of the latency histogram's buckets (+Inf is implicit).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Request counts, latency histograms and rows predicted of one server process."""

    def __init__(self, *, model_kind: str, model_version: str, onepass_version: str,
                 routes: tuple[str, ...]) -> None:
        self.info = {"kind": model_kind, "version": model_version, "onepass_version": onepass_version}
        self.routes = frozenset(routes)
        self.pid = str(os.getpid())
        # (route, status) -> [count, sum of seconds, count per bucket (not cumulative)]
        self._series: dict[tuple[str, int], list] = {}
        self.rows_predicted = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route if route in self.routes else "other", status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0, 0.0, [0] * (len(BUCKETS) + 1)]
        series[0] += 1
        series[1] += seconds
        series[2][bisect_left(BUCKETS, seconds)] += 1

    def render(self) -> bytes:
        pid = f'pid="{self.pid}"'
        info = ",".join(f'{k}="{_label(v)}"' for k, v in self.info.items())
        lines = [
            "# HELP onepass_model_info The model this server answers with.",
            "# TYPE onepass_model_info gauge",
            f"onepass_model_info{{{info},{pid}}} 1",
            "# HELP onepass_rows_predicted_total Rows predicted by POST /invocations.",
            "# TYPE onepass_rows_predicted_total counter",
            f"onepass_rows_predicted_total{{{pid}}} {self.rows_predicted}",
            "# HELP onepass_requests_total HTTP requests answered, by route and status.",
            "# TYPE onepass_requests_total counter",
        ]
        ordered = sorted(self._series.items())
        for (route, status), (count, _, _) in ordered:
            lines.append(f'onepass_requests_total{{route="{route}",status="{status}",{pid}}} {count}')
        lines += [
            "# HELP onepass_request_duration_seconds Time from a request's arrival to its response, by route and status.",
            "# TYPE onepass_request_duration_seconds histogram",
        ]
        for (route, status), (count, total, buckets) in ordered:
            labels = f'route="{route}",status="{status}",{pid}'
            running = 0
            for bound, n in zip((*BUCKETS, "+Inf"), buckets, strict=True):
                running += n
                lines.append(f'onepass_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
            lines.append(f"onepass_request_duration_seconds_sum{{{labels}}} {total!r}")
            lines.append(f"onepass_request_duration_seconds_count{{{labels}}} {count}")
        return ("\n".join(lines) + "\n").encode()
