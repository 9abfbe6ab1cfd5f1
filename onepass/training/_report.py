"""What a training run reports while it runs: metrics lines, a progress bar, and when."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["MetricsWriter", "Progress", "Schedule", "total_rows"]


class MetricsWriter:
    """Writes metrics as one JSON object per line to a path, ``"-"`` (stdout), or a file."""

    def __init__(self, target: str | os.PathLike[str] | IO[str] | None) -> None:
        self._own = False
        self._fh: IO[str] | None
        if target is None:
            self._fh = None
        elif target == "-":
            self._fh = sys.stdout
        elif hasattr(target, "write"):
            self._fh = target  # type: ignore[assignment]
        else:
            path = Path(target)  # type: ignore[arg-type]
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")
            self._own = True

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, sort_keys=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._own and self._fh is not None:
            self._fh.close()


class Progress:
    """A progress bar on stderr when stderr is a terminal: rows, rows/s and elapsed time,
    and, when the source knows how much of it has been read, the total rows it holds (an
    estimate, refined as it goes), the percentage and the time left."""

    def __init__(self, enabled: bool | None, initial: int, epochs: int = 1) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        self._epochs = epochs
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=None, initial=initial, unit=" rows", unit_scale=True,
                             file=sys.stderr, dynamic_ncols=True, desc="train")

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn (a source's share read is asked for only then)."""
        return self._bar is not None

    def update(self, n: int, fraction: float | None = None, rows_read: int | None = None) -> None:
        """``n`` more rows; ``fraction`` of the source read so far this epoch, when known,
        with the ``rows_read`` from its start, gives the bar its total."""
        if self._bar is None:
            return
        self._bar.update(n)
        if fraction is not None and rows_read and fraction > 0:
            total = max(total_rows(rows_read, fraction, self._epochs), self._bar.n)
            moved = self._bar.total is None or abs(total - self._bar.total) > 0.001 * self._bar.total
            self._bar.total = total
            if moved:
                self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def total_rows(rows_read: int, fraction: float, epochs: int = 1) -> int:
    """The rows a run will read in all: ``rows_read`` of the source are ``fraction`` of it,
    read ``epochs`` times."""
    return int(round(rows_read / fraction)) * epochs


class Schedule:
    """When a checkpoint is due (every ``rows`` rows or ``seconds`` seconds, whichever
    comes first) and when a progress record is (every ``metrics_seconds``)."""

    def __init__(self, rows: int | None, seconds: float | None, metrics_seconds: float) -> None:
        self.rows, self.seconds, self.metrics_seconds = rows, seconds, metrics_seconds
        self.restart()

    def restart(self) -> None:
        """Count from now (a new epoch's source)."""
        self.rows_since = 0
        self.last_ckpt = self.last_metrics = time.perf_counter()

    def checkpoint_due(self, rows: int) -> bool:
        """After ``rows`` more rows: is a checkpoint due? (If so, the count starts again.)"""
        self.rows_since += rows
        now = time.perf_counter()
        due = (self.rows is not None and self.rows_since >= self.rows) or (
            self.seconds is not None and now - self.last_ckpt >= self.seconds)
        if due:
            self.rows_since, self.last_ckpt = 0, now
        return due

    def metrics_due(self) -> bool:
        now = time.perf_counter()
        if now - self.last_metrics >= self.metrics_seconds:
            self.last_metrics = now
            return True
        return False
