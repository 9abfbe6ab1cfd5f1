"""The leaderboard: one record per candidate, ranked, with the chosen one marked.

A plain list of dicts (``pandas.DataFrame(board)`` turns it into a table), with the
metric it was ranked by and how the winner was chosen as attributes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onepass.errors import InvalidParameterError
from onepass.evaluation._text import format_table

__all__ = ["SELECT_RULES", "Leaderboard", "choose"]

SELECT_RULES = ("best", "elbow", "target")


class Leaderboard(list):
    """Records (dicts) of settings and scores, in the order the settings were given;
    ``place`` is each record's position when ranked by the metric (1 is the best).

    Attributes
    ----------
    metric : str
        The metric ranked by; ``direction`` is ``"min"`` or ``"max"``.
    select : str
        How the chosen record was picked: ``best``, ``elbow`` or ``target``.
    chosen : dict
        The chosen record (also marked ``"chosen": True``).
    """

    def __init__(self, records: list[dict[str, Any]], *, metric: str, direction: str, select: str,
                 params: list[str], target: float | None = None) -> None:
        super().__init__(records)
        self.metric, self.direction, self.select, self.params, self.target = metric, direction, select, params, target

    @property
    def chosen(self) -> dict[str, Any]:
        return next(r for r in self if r.get("chosen"))

    def table(self) -> str:
        """The leaderboard as aligned text, best rank first."""
        if not self:
            return "(empty)"
        hidden = ("place", "chosen", "history", *self.params)
        keys = ["place", *self.params] + [k for k in self[0] if k not in hidden]
        rows = [{**{k: r.get(k) for k in keys}, "": "<- chosen" if r.get("chosen") else ""}
                for r in sorted(self, key=lambda r: r["place"])]
        return format_table(rows)

    def to_json(self) -> dict[str, Any]:
        # threshold_unit: thresholds are shown as predict's score (a probability for logistic
        # loss); records written before it held raw scores
        return {"metric": self.metric, "direction": self.direction, "select": self.select, "target": self.target,
                "params": self.params, "threshold_unit": "score", "records": [_jsonable(r) for r in self]}


def _jsonable(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}


def _elbow(xs: np.ndarray, ys: np.ndarray) -> int:
    """The knee of a monotone curve: the point farthest from the chord joining its ends,
    both axes scaled to [0, 1] (the "kneedle" idea, Satopaa et al. 2011)."""
    x = (xs - xs.min()) / (np.ptp(xs) or 1.0)
    y = (ys - ys.min()) / (np.ptp(ys) or 1.0)
    # Distance from (x, y) to the line through the first and last points.
    (x0, y0), (x1, y1) = (x[0], y[0]), (x[-1], y[-1])
    dist = np.abs((y1 - y0) * x - (x1 - x0) * y + x1 * y0 - y1 * x0) / (math.hypot(x1 - x0, y1 - y0) or 1.0)
    return int(np.argmax(dist))


def choose(records: list[dict[str, Any]], *, metric: str, direction: str, select: str, params: list[str],
           target: float | None = None) -> Leaderboard:
    """Rank ``records`` by ``metric`` and mark the one ``select`` picks."""
    if select not in SELECT_RULES:
        raise InvalidParameterError(f"select={select!r}: choose one of {', '.join(SELECT_RULES)}")
    values = np.array([r.get(metric, math.nan) for r in records], dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise InvalidParameterError(f"no candidate has a finite {metric}; try another metric")
    sign = 1.0 if direction == "min" else -1.0
    order = sorted(np.flatnonzero(finite), key=lambda i: sign * values[i])
    order += [i for i in range(len(records)) if not finite[i]]
    for rank, i in enumerate(order, start=1):
        records[i]["place"] = rank
    if select == "best":
        pick = order[0]
    elif select == "target":
        if target is None:
            raise InvalidParameterError("select='target' needs a target value (--target)")
        reach = values <= target if direction == "min" else values >= target
        hits = np.flatnonzero(reach & finite)
        if hits.size == 0:
            best = values[order[0]]
            raise InvalidParameterError(
                f"no setting reaches {metric} {'<=' if direction == 'min' else '>='} {target}; the best reached {best:.6g}"
            )
        pick = int(hits[0])  # the first in the order given: the smallest setting
    else:
        if len(params) != 1:
            raise InvalidParameterError("select='elbow' needs exactly one tuned setting")
        xs = np.array([records[i][params[0]] for i in np.flatnonzero(finite)], dtype=np.float64)
        pick = int(np.flatnonzero(finite)[_elbow(xs, values[finite])])
    records[pick]["chosen"] = True
    return Leaderboard(records, metric=metric, direction=direction, select=select, params=params, target=target)
