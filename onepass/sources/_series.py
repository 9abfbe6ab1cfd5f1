"""Time series in: SageMaker DeepAR's JSON lines, one series (or a stretch of one) per line.

Format ``"series"`` (``--format series``; a forecasting algorithm asks for it itself). Each
line is ``{"start": "2026-01-01 00:00:00", "target": [...], "cat": [...],
"dynamic_feat": [[...], ...]}`` as SageMaker's DeepAR reads it: ``target`` numbers, with
``null`` or ``"NaN"`` for a missing value; ``cat`` whole numbers (the series' categories);
``dynamic_feat`` one list per covariate, each as long as ``target`` (or longer, by the
points to forecast, in a request). An optional ``"id"`` (or GluonTS's ``"item_id"``) names
the series: a later line with the same id extends it (new points of a known series), so a
stream of fresh points trains on with what came before.

A batch's ``X`` is a :class:`SeriesRows` (one row per line), so series go through the
same Source as every format: cursors (byte offsets) for exact resume, and bad records
(an unparseable ``start``, a ``target`` that is not a list of numbers, ``cat`` that are
not whole numbers, a ``dynamic_feat`` of the wrong length) named by file and line, or
skipped, or quarantined.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Reader
from onepass.sources._text import data_blocks, split_lines
from onepass.sources._transport import Entry

__all__ = ["SeriesReader", "SeriesRows", "parse_series", "parse_start"]


@dataclass
class SeriesRows:
    """Series records: what a batch of format ``"series"`` holds in ``X``.

    Attributes
    ----------
    ids : list of str or None
        Each record's series id (None: a series of its own).
    starts : ndarray of datetime64[s]
        The time of each record's first point.
    targets : list of float32 ndarray
        The points (NaN where missing).
    cat : int64 ndarray of shape (n, n_cat)
        Categories (``n_cat`` 0 when no record has any).
    dynamic_feat : list of float32 ndarray of shape (n_dynamic, len), or None
    where : list of str
        ``file:line`` of each record, for messages.
    """

    ids: list[str | None]
    starts: np.ndarray
    targets: list[np.ndarray]
    cat: np.ndarray
    dynamic_feat: list[np.ndarray] | None
    where: list[str] = field(default_factory=list)
    #: each point's time, for records read from a long table (None: the points follow one
    #: another at the series' frequency from ``starts``); :meth:`on_grid` places them
    times: list[np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(records, 0)``: a series has no fixed width of columns."""
        return (len(self.targets), 0)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: slice) -> SeriesRows:
        return SeriesRows(self.ids[index], self.starts[index], self.targets[index], self.cat[index],
                          None if self.dynamic_feat is None else self.dynamic_feat[index], self.where[index],
                          None if self.times is None else self.times[index])

    def on_grid(self, frequency: Any) -> SeriesRows:
        """These records with every point at a step of ``frequency`` (a
        :class:`~onepass.algorithms.deepar._features.Frequency`) from its record's first
        point: a missing step is a missing value (NaN, covariates 0). Records without
        ``times`` are already on it. A point off the grid, or two at one step, is a
        DataError naming the record."""
        from onepass.errors import DataError

        if self.times is None:
            return self
        targets, dyn = [], [] if self.dynamic_feat is not None else None
        for i, t in enumerate(self.times):
            steps = np.array([frequency.steps_between(t[0], x) for x in t]) if frequency.unit == "M" else (
                (t - t[0]).astype("timedelta64[s]").astype(np.int64) / frequency.seconds)
            if np.any(steps != np.round(steps)) or np.any(np.diff(steps) <= 0):
                j = int(np.flatnonzero((steps != np.round(steps)) | np.r_[False, np.diff(steps) <= 0])[0])
                raise DataError(f"{self.where[i]}: the point at {t[j]} is "
                                + ("not a whole number of steps of " + frequency.text + f" after {t[0]}"
                                   if steps[j] != round(steps[j]) else "at or before the point before it")
                                + "; sort the table by time, with one row per series and time step")
            at = np.round(steps).astype(np.int64)
            values = np.full(int(at[-1]) + 1, np.nan, np.float32)
            values[at] = self.targets[i]
            targets.append(values)
            if dyn is not None:
                d = np.zeros((self.dynamic_feat[i].shape[0], len(values)), np.float32)
                d[:, at] = self.dynamic_feat[i]
                dyn.append(d)
        return SeriesRows(self.ids, self.starts, targets, self.cat, dyn, self.where)

    @classmethod
    def concat(cls, parts: Sequence[SeriesRows]) -> SeriesRows:
        n_cat = max((p.cat.shape[1] for p in parts), default=0)
        cats = [p.cat if p.cat.shape[1] == n_cat else np.zeros((len(p), n_cat), np.int64) for p in parts]
        dyn = None
        if any(p.dynamic_feat is not None for p in parts):
            dyn = [d for p in parts for d in (p.dynamic_feat or [np.zeros((0, len(t)), np.float32)
                                                                 for t in p.targets])]
        times = None
        if any(p.times is not None for p in parts):
            times = [x for p in parts for x in (p.times or [p.starts[i] + np.arange(len(t)).astype("timedelta64[s]")
                                                             for i, t in enumerate(p.targets)])]
        return cls([i for p in parts for i in p.ids], np.concatenate([p.starts for p in parts]),
                   [t for p in parts for t in p.targets], np.concatenate(cats), dyn,
                   [w for p in parts for w in p.where], times)

    @classmethod
    def of(cls, records: Sequence[dict[str, Any]], where: str = "instance") -> SeriesRows:
        """Records already decoded (a request's ``instances``); a bad one raises DataError
        naming ``where`` and its index."""
        from onepass.errors import DataError

        parsed = []
        for i, rec in enumerate(records):
            try:
                parsed.append(parse_series(rec))
            except _Bad as e:
                raise DataError(f"{where} {i}: {e.reason}" + (f" (field {e.column!r})" if e.column else "")) from None
        return _rows(parsed, [f"{where} {i}" for i in range(len(parsed))])


class _Bad(Exception):
    def __init__(self, reason: str, column: str | None = None) -> None:
        self.reason, self.column = reason, column


def parse_start(value: Any) -> np.datetime64:
    """SageMaker's ``start``: ``"YYYY-MM-DD HH:MM:SS"`` (or any ISO 8601 date and time)."""
    if not isinstance(value, str):
        raise _Bad(f"'start' must be a date and time as text, got {json.dumps(value)}", "start")
    try:
        t = np.datetime64(value.strip().replace(" ", "T", 1), "s")
    except ValueError:
        raise _Bad(f"'start' {value!r} is not a date and time (YYYY-MM-DD HH:MM:SS)", "start") from None
    if np.isnat(t):
        raise _Bad(f"'start' {value!r} is not a date and time", "start")
    return t


def _floats(values: Any, what: str) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iuf":  # the Python API's
        out = values.astype(np.float64)
        if np.isinf(out).any():
            j = int(np.flatnonzero(np.isinf(out))[0])
            raise _Bad(f"{what}[{j}] is {out[j]}: infinite values are not allowed (NaN marks a missing one)", what)
        return out.astype(np.float32)
    if not isinstance(values, list):
        raise _Bad(f"{what!r} must be a list of numbers, got {type(values).__name__}", what)
    out = np.empty(len(values), np.float64)
    for j, v in enumerate(values):
        if v is None or v == "NaN" or v == "nan":
            out[j] = math.nan
        elif type(v) in (int, float) or (isinstance(v, (np.integer, np.floating)) and not isinstance(v, np.bool_)):
            out[j] = v
            if math.isinf(v):
                raise _Bad(f"{what}[{j}] is {v}: infinite values are not allowed (null marks a missing one)", what)
        else:
            raise _Bad(f"{what}[{j}] is {json.dumps(v)}, not a number (null marks a missing value)", what)
    return out.astype(np.float32)


def parse_series(obj: Any) -> tuple[str | None, np.datetime64, np.ndarray, list[int], np.ndarray | None]:
    """``(id, start, target, cat, dynamic_feat)`` of one decoded record (raises _Bad)."""
    if type(obj) is not dict:
        raise _Bad(f"expected a JSON object, got {type(obj).__name__}")
    if "start" not in obj:
        raise _Bad("'start' missing", "start")
    if "target" not in obj:
        raise _Bad("'target' missing", "target")
    start = parse_start(obj["start"])
    target = _floats(obj["target"], "target")
    if len(target) == 0:
        raise _Bad("'target' is empty", "target")
    cat = obj.get("cat", [])
    if isinstance(cat, int) and type(cat) is not bool:
        cat = [cat]
    if isinstance(cat, np.ndarray):
        cat = cat.tolist()
    if not isinstance(cat, list) or not all((type(c) is int or isinstance(c, np.integer)) and c >= 0 for c in cat):
        raise _Bad(f"'cat' must be whole numbers >= 0, got {json.dumps(cat)}", "cat")
    dyn = obj.get("dynamic_feat")
    feats = None
    if dyn is not None:
        if isinstance(dyn, np.ndarray):
            dyn = list(dyn)
        if not isinstance(dyn, list) or not all(isinstance(d, (list, np.ndarray)) for d in dyn):
            raise _Bad("'dynamic_feat' must be a list of lists of numbers", "dynamic_feat")
        feats = np.stack([_floats(d, "dynamic_feat") for d in dyn]) if dyn else np.zeros((0, len(target)), np.float32)
        if len({len(d) for d in dyn}) > 1:
            raise _Bad(f"the lists of 'dynamic_feat' have lengths {sorted({len(d) for d in dyn})}: they must be "
                       "equally long", "dynamic_feat")
        if dyn and len(dyn[0]) < len(target):
            raise _Bad(f"'dynamic_feat' has {len(dyn[0])} points but 'target' {len(target)}: each covariate needs a "
                       "value at every point of the target", "dynamic_feat")
        if np.isnan(feats).any():
            raise _Bad("'dynamic_feat' has a missing value: covariates must be known at every point", "dynamic_feat")
    sid = obj.get("id", obj.get("item_id"))
    return (None if sid is None else str(sid)), start, target, cat, feats


def _rows(parsed: list[tuple], where: list[str]) -> SeriesRows:
    n_cat = max((len(p[3]) for p in parsed), default=0)
    cat = np.zeros((len(parsed), n_cat), np.int64)
    for i, p in enumerate(parsed):
        cat[i, :len(p[3])] = p[3]
    dyn = None if all(p[4] is None for p in parsed) else [
        p[4] if p[4] is not None else np.zeros((0, len(p[2])), np.float32) for p in parsed]
    return SeriesRows([p[0] for p in parsed], np.array([p[1] for p in parsed], dtype="datetime64[s]"),
                      [p[2] for p in parsed], cat, dyn, where)


class SeriesReader(Reader):
    """SageMaker DeepAR's JSON lines, line by line (``json.loads``)."""

    name = "series"
    can_stream = True

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        for block, at, at_line, _starts, ends in data_blocks(entry, start):
            yield self._parse_block(bytes(block), at, at_line, ends, entry.name)

    def _parse_block(self, data: bytes, offset: int, line: int, ends: np.ndarray, name: str) -> Chunk:
        bad: list[BadRecord] = []
        parsed: list[tuple] = []
        rows_end: list[int] = []
        rows_line: list[int] = []
        for i, raw in enumerate(split_lines(data)):
            if not raw.strip():
                continue
            end = offset + min(int(ends[i]) + 1, len(data))
            try:
                try:
                    obj = json.loads(raw)
                except ValueError as e:
                    raise _Bad(f"invalid JSON: {e}") from None
                parsed.append(parse_series(obj))
            except _Bad as e:
                bad.append(BadRecord(end, line + 1 + i, e.reason, e.column,
                                     raw.decode("utf-8", errors="replace").rstrip("\r")))
                continue
            rows_end.append(end)
            rows_line.append(line + 1 + i)
        rows = _rows(parsed, [f"{name}:{n}" for n in rows_line])
        return Chunk(rows, None, None, np.array(rows_end, np.int64), np.array(rows_line, np.int64), bad)
