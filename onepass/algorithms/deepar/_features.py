"""What DeepAR's network sees at each time step, in NumPy (training and forecasting share it).

``time_freq`` (SageMaker's: ``min``, ``H``, ``D``, ``W``, ``M``, with multiples such as
``15min`` or ``2H``) fixes the step between points, the lags (the values the network
reads at each step: the last seven, and the same season in earlier cycles, as GluonTS's
DeepAR picks them: the hours of the last 7 days, a month of days...) and the time features (hour of day, day of week, day of
month, day of year, week of year, month of year, as GluonTS picks them by frequency,
each scaled to [-0.5, 0.5]).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from onepass.errors import InvalidParameterError

__all__ = ["Frequency", "parse_frequency"]

_UNITS = {"min": 60, "T": 60, "H": 3600, "h": 3600, "D": 86400, "W": 7 * 86400, "M": 0}
#: the longest lag (GluonTS's lag_ub)
LAG_LIMIT = 1200
#: time features per unit, as GluonTS's time_features_from_frequency_str
_TIME_FEATURES = {
    "min": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "H": ("hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "D": ("day_of_week", "day_of_month", "day_of_year"),
    "W": ("day_of_month", "week_of_year"),
    "M": ("month_of_year",),
}


@dataclass(frozen=True)
class Frequency:
    """A parsed ``time_freq``: ``multiple`` steps of ``unit``."""

    unit: str  # "min", "H", "D", "W", "M"
    multiple: int

    @property
    def text(self) -> str:
        return f"{self.multiple if self.multiple != 1 else ''}{self.unit}"

    @property
    def seconds(self) -> int:
        """The step in seconds (0 for months, whose length varies)."""
        return _UNITS[self.unit] * self.multiple

    @property
    def season(self) -> int:
        """The seasonal period MASE's naive forecast repeats (GluonTS's get_seasonality:
        an hour of minutes, a day of hours, a year of months; 1 for days and weeks)."""
        period = {"min": 60, "H": 24, "M": 12}.get(self.unit, 1)
        return max(1, period // self.multiple) if period % self.multiple == 0 else 1

    def lags(self, limit: int = LAG_LIMIT) -> list[int]:
        """The lags, in steps, as GluonTS picks them for the frequency (DeepAR's own
        implementation): 1 to 7, then the same season (+-1, +-2 for minutes) in earlier
        cycles: hours of the last 7 days, days of the last 4 weeks and a month, weeks of
        the last 3 years and 4, 8, 12 weeks, months of the last 3 years; up to ``limit``."""
        m = self.multiple

        def around(middle: float, delta: int) -> list[float]:
            return [middle + d for d in range(-delta, delta + 1)]

        def minutes(n: float) -> list[float]:
            return [x for k in range(1, 4) for x in around(k * 60 / n, 2)]

        def hours(n: float) -> list[float]:
            return [x for k in range(1, 8) for x in around(k * 24 / n, 1)]

        def days(n: float) -> list[float]:
            return [x for k in range(1, 5) for x in around(k * 7 / n, 1)] + around(30 / n, 1)

        def weeks(n: float) -> list[float]:
            return [x for k in range(1, 4) for x in around(k * 52 / n, 1)] + [4 / n, 8 / n, 12 / n]

        def months(n: float) -> list[float]:
            return [x for k in range(1, 4) for x in around(k * 12 / n, 1)]

        found = {"min": lambda: minutes(m) + hours(m / 60) + days(m / 1440) + weeks(m / 10080),
                 "H": lambda: hours(m) + days(m / 24) + weeks(m / 168),
                 "D": lambda: days(m) + weeks(m / 7),
                 "W": lambda: weeks(m),
                 "M": lambda: months(m) if m < 12 else []}[self.unit]()
        return list(range(1, 8)) + sorted({int(x) for x in found if 7 < int(x) <= limit})

    @property
    def time_feature_names(self) -> tuple[str, ...]:
        return _TIME_FEATURES[self.unit]

    def times(self, start: np.ndarray, n: int, offset: np.ndarray | int = 0) -> np.ndarray:
        """datetime64[s] of steps ``offset .. offset + n - 1`` after each ``start``: shape (len(start), n)."""
        start = np.asarray(start, "datetime64[s]").reshape(-1)
        steps = np.asarray(offset).reshape(-1, 1) + np.arange(n)
        if self.unit == "M":
            months = start.astype("datetime64[M]").reshape(-1, 1) + steps * self.multiple
            return months.astype("datetime64[s]")
        return start.reshape(-1, 1) + (steps * self.seconds).astype("timedelta64[s]")

    def steps_between(self, a: np.datetime64, b: np.datetime64) -> float:
        """How many steps from ``a`` to ``b`` (a fraction when ``b`` is not on the grid of ``a``)."""
        if self.unit == "M":
            ma, mb = np.datetime64(a, "M"), np.datetime64(b, "M")
            return float((mb - ma).astype(int)) / self.multiple
        return float((np.datetime64(b, "s") - np.datetime64(a, "s")).astype(np.int64)) / self.seconds

    def after(self, start: np.datetime64, n: int) -> np.datetime64:
        """The time ``n`` steps after ``start``."""
        if self.unit == "M":
            return (np.datetime64(start, "M") + n * self.multiple).astype("datetime64[s]")
        return np.datetime64(start, "s") + np.timedelta64(n * self.seconds, "s")

    def time_features(self, times: np.ndarray) -> np.ndarray:
        """The time features of ``times`` (any shape): float32, one more axis of features."""
        t = times.astype("datetime64[s]")
        secs = t.astype(np.int64)
        days = t.astype("datetime64[D]")
        months = t.astype("datetime64[M]")
        years = t.astype("datetime64[Y]")
        out = []
        for name in self.time_feature_names:
            if name == "minute_of_hour":
                v = ((secs // 60) % 60) / 59.0
            elif name == "hour_of_day":
                v = ((secs // 3600) % 24) / 23.0
            elif name == "day_of_week":
                v = ((days.astype(np.int64) + 3) % 7) / 6.0  # 1970-01-01 was a Thursday: Monday is 0
            elif name == "day_of_month":
                v = (days - months.astype("datetime64[D]")).astype(np.int64) / 30.0
            elif name == "day_of_year":
                v = (days - years.astype("datetime64[D]")).astype(np.int64) / 365.0
            elif name == "week_of_year":
                v = ((days - years.astype("datetime64[D]")).astype(np.int64) // 7) / 52.0
            else:  # month_of_year
                v = (months - years.astype("datetime64[M]")).astype(np.int64) / 11.0
            out.append(v - 0.5)
        return np.stack(out, axis=-1).astype(np.float32)


def parse_frequency(text: str) -> Frequency:
    """SageMaker's ``time_freq`` (``"H"``, ``"15min"``, ``"2D"``, ``"W"``, ``"M"``; pandas'
    ``"T"`` and ``"h"`` too)."""
    m = re.fullmatch(r"\s*(\d*)\s*(min|T|H|h|D|W|M)\s*", str(text))
    if m is None:
        raise InvalidParameterError(
            f"time_freq={text!r} is not a frequency: give min, H, D, W or M, with a multiple if needed (15min, 2H)")
    multiple = int(m.group(1) or 1)
    if multiple < 1:
        raise InvalidParameterError(f"time_freq={text!r}: the multiple must be >= 1")
    unit = {"T": "min", "h": "H"}.get(m.group(2), m.group(2))
    return Frequency(unit, multiple)


def window_inputs(values: np.ndarray, lags: list[int], scale: np.ndarray, start: int, length: int) -> np.ndarray:
    """The lagged values the network reads at steps ``start .. start + length - 1`` of each
    row of ``values`` (NaN, a missing value, read as 0), divided by the row's ``scale``:
    shape (rows, length, len(lags)). ``start`` must be at least the largest lag."""
    idx = np.arange(start, start + length)[:, None] - np.asarray(lags)[None, :]
    out = values[:, idx] / scale[:, None, None]
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def mean_scale(context: np.ndarray) -> np.ndarray:
    """Each row's scale: the mean absolute observed value of its context (GluonTS's
    MeanScaler), 1 for a row with no observed non-zero value."""
    a = np.abs(context)
    n = np.sum(~np.isnan(a), axis=1)
    s = np.where(n > 0, np.nansum(a, axis=1) / np.maximum(n, 1), 0.0)
    return np.where(s > 0, s, 1.0).astype(np.float32)
