"""Counters and latency histograms of the server, in the Prometheus text format.

Fixed memory: one float64 array, a row per (route, status) series, routes being the
known paths or ``other`` and statuses the ones the server answers or ``other``. With
``--workers N`` each worker's array is a file in a directory the workers share
(memory-mapped, written only by its worker), and ``/metrics`` adds up every file, so
whichever worker answers the scrape reports the whole server.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from pathlib import Path

import numpy as np

__all__ = ["BUCKETS", "STATUSES", "Metrics"]

# Seconds; the upper bounds of the latency histogram's buckets (+Inf is implicit).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUSES = (200, 400, 401, 404, 405, 406, 413, 415, 499, 500, 503)  # 499: the client left first
_COUNT, _SUM, _FIRST_BUCKET = 0, 1, 2
_WIDTH = _FIRST_BUCKET + len(BUCKETS) + 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Request counts, latency histograms and rows predicted of a server.

    Parameters
    ----------
    routes : tuple of str
        The paths counted apart; any other path counts as ``other``.
    directory : path or None
        Where the workers of one server keep their counters (one file each), or None for
        a single process (counters in memory).
    """

    def __init__(self, *, model_kind: str, model_version: str, onepass_version: str,
                 routes: tuple[str, ...], directory: str | os.PathLike[str] | None = None) -> None:
        self.info = {"kind": model_kind, "version": model_version, "onepass_version": onepass_version}
        self.routes = (*routes, "other")
        self.statuses = (*map(str, STATUSES), "other")
        self._route_index = {r: i for i, r in enumerate(self.routes)}
        self._status_index = {s: i for i, s in enumerate(STATUSES)}
        shape = (len(self.routes) * len(self.statuses) * _WIDTH + 1,)  # + rows predicted, last
        self.directory = Path(directory) if directory is not None else None
        if self.directory is None:
            self._values = np.zeros(shape)
        else:
            path = self.directory / f"worker-{os.getpid()}.f64"
            self._values = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=shape)

    def _row(self, route: str, status: int) -> int:
        r = self._route_index.get(route, len(self.routes) - 1)
        s = self._status_index.get(status, len(self.statuses) - 1)
        return (r * len(self.statuses) + s) * _WIDTH

    def observe(self, route: str, status: int, seconds: float) -> None:
        row = self._row(route, status)
        values = self._values
        values[row + _COUNT] += 1
        values[row + _SUM] += seconds
        values[row + _FIRST_BUCKET + bisect_left(BUCKETS, seconds)] += 1

    def add_rows(self, n: int) -> None:
        self._values[-1] += n

    def totals(self) -> np.ndarray:
        """Every counter, summed over the workers."""
        if self.directory is None:
            return self._values.copy()
        total = np.zeros_like(self._values)
        for path in self.directory.glob("worker-*.f64"):
            try:
                values = np.load(path, mmap_mode="r")
            except (OSError, ValueError):  # a worker creating its file right now
                continue
            if values.shape == total.shape:
                total += values
        return total

    def render(self) -> bytes:
        values = self.totals()
        info = ",".join(f'{k}="{_label(v)}"' for k, v in self.info.items())
        lines = [
            "# HELP onepass_model_info The model this server answers with.",
            "# TYPE onepass_model_info gauge",
            f"onepass_model_info{{{info}}} 1",
            "# HELP onepass_rows_predicted_total Rows predicted by POST /invocations.",
            "# TYPE onepass_rows_predicted_total counter",
            f"onepass_rows_predicted_total {int(values[-1])}",
            "# HELP onepass_requests_total HTTP requests answered, by route and status.",
            "# TYPE onepass_requests_total counter",
        ]
        series = []
        for route in self.routes:
            for status in self.statuses:
                row = self._row(route, int(status) if status != "other" else -1)
                if values[row + _COUNT]:
                    series.append((f'route="{route}",status="{status}"', values[row : row + _WIDTH]))
        lines += [f"onepass_requests_total{{{labels}}} {int(v[_COUNT])}" for labels, v in series]
        lines += [
            "# HELP onepass_request_duration_seconds Time from a request's arrival to its response, by route and status.",
            "# TYPE onepass_request_duration_seconds histogram",
        ]
        for labels, v in series:
            cumulative = np.cumsum(v[_FIRST_BUCKET:])
            for bound, n in zip((*BUCKETS, "+Inf"), cumulative, strict=True):
                lines.append(f'onepass_request_duration_seconds_bucket{{{labels},le="{bound}"}} {int(n)}')
            lines.append(f"onepass_request_duration_seconds_sum{{{labels}}} {float(v[_SUM])!r}")
            lines.append(f"onepass_request_duration_seconds_count{{{labels}}} {int(v[_COUNT])}")
        return ("\n".join(lines) + "\n").encode()
