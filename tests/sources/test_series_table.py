"""Series from a long table (format "series" from CSV or Parquet: one row per series and
time step): the same series as SageMaker's JSON lines, stretches a DeepAR state extends,
exact resume, bad rows by file, line and column, the CLI's flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import onepass
from onepass.algorithms.deepar._features import parse_frequency
from onepass.errors import BadRecordError, InvalidParameterError
from onepass.sources import _text, open_source

HOUR = parse_frequency("H")
T0 = np.datetime64("2026-03-01T00:00:00")
TINY_DEEPAR = {"prediction_length": 3, "context_length": 6, "time_freq": "H", "num_cells": 8, "num_layers": 1,
               "mini_batch_size": 16, "windows_per_prediction_length": 2.0}


def make_series(n: int = 5, T: int = 30, seed: int = 0) -> list[dict]:
    """Hourly series starting at different hours, with missing values (NaN) and steps that
    have no row in the table (``present`` False), a covariate and a category."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        target = rng.normal(10, 3, T).round(2)
        target[rng.random(T) < 0.1] = np.nan
        present = rng.random(T) > 0.15
        present[[0, -1]] = True
        out.append({"id": f"s{i}", "start": T0 + np.timedelta64(int(rng.integers(0, 4)), "h"), "target": target,
                    "price": rng.uniform(1, 5, T).round(2), "cat": i % 3, "present": present})
    return out


def table_rows(series: list[dict]) -> list[tuple]:
    """(id, time, value, price, cat) of every present step, interleaved by time (every
    series at t, then every one at t+1)."""
    rows = [(s["id"], s["start"] + np.timedelta64(k, "h"), s["target"][k], s["price"][k], s["cat"])
            for s in series for k in np.flatnonzero(s["present"])]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def write_csv(path: Path, rows: list[tuple], header: str = "item_id,timestamp,value,price,store") -> Path:
    lines = [header] + [f"{i},{str(t).replace('T', ' ')},{'' if np.isnan(v) else v},{p},{c}" for i, t, v, p, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path: Path, rows: list[tuple], row_group_size: int = 1000) -> Path:
    ids, times, values, prices, cats = zip(*rows, strict=True)
    pq.write_table(pa.table({
        "item_id": pa.array(ids), "timestamp": pa.array(np.array(times, "datetime64[ms]")),
        "value": pa.array([None if np.isnan(v) else v for v in values], pa.float64()),
        "price": pa.array(prices, pa.float32()), "store": pa.array(cats, pa.int16())}), path,
        row_group_size=row_group_size)
    return path


def write_jsonl(path: Path, series: list[dict]) -> Path:
    """SageMaker's JSON lines of ``series``: a step without a row is a missing value (null,
    covariate 0, as SeriesRows.on_grid places it)."""
    with path.open("w") as f:
        for s in series:
            target = [None if not p or np.isnan(v) else float(v) for v, p in zip(s["target"], s["present"], strict=True)]
            price = [float(v) if p else 0.0 for v, p in zip(s["price"], s["present"], strict=True)]
            f.write(json.dumps({"id": s["id"], "start": str(s["start"]), "target": target, "cat": [s["cat"]],
                                "dynamic_feat": [price]}) + "\n")
    return path


def records(path: Path, **kw) -> list[dict]:
    """Every record read from ``path``, with its batch's cursor."""
    out = []
    kw = {"format": "series", "dynamic_feat_columns": ["price"], "cat_columns": ["store"], **kw}
    with open_source(path, **kw) as src:
        for b in src:
            X = b.X
            for i in range(len(X)):
                out.append({"id": X.ids[i], "start": X.starts[i], "target": X.targets[i], "cat": X.cat[i].tolist(),
                            "dyn": X.dynamic_feat[i], "where": X.where[i], "times": X.times[i]})
            out[-1]["cursor"] = b.cursor
    return out


def same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x["id"], x["start"], x["cat"], x["where"], x.get("cursor")) == \
            (y["id"], y["start"], y["cat"], y["where"], y.get("cursor"))
        np.testing.assert_array_equal(x["target"], y["target"])
        np.testing.assert_array_equal(x["times"], y["times"])
        np.testing.assert_array_equal(x["dyn"], y["dyn"])


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet"])
def test_a_long_table_gives_the_series_of_the_json_lines(tmp_path: Path, kind: str) -> None:
    """Read in one batch, each series is one record; on the hourly grid it is the JSON
    lines' record (missing steps NaN, covariates 0 there); in batches of 7 rows, each
    batch holds one stretch per series in it, in table order."""
    series = make_series()
    rows = table_rows(series)
    if kind == "parquet":
        path = write_parquet(tmp_path / "t.parquet", rows, row_group_size=16)
    else:
        path = write_csv(tmp_path / "t.csv", rows)
        if kind == "tsv":
            path = tmp_path / "t.tsv"
            path.write_text((tmp_path / "t.csv").read_text().replace(",", "\t"))
    kw = {"dynamic_feat_columns": ["price"], "cat_columns": ["store"]}
    with open_source(path, format="series", batch_size=10_000, **kw) as src:
        (batch,) = list(src)
    with open_source(write_jsonl(tmp_path / "t.jsonl", series), format="series") as src:
        (want,) = list(src)
    got, want = batch.X.on_grid(HOUR), want.X.on_grid(HOUR)
    order = [got.ids.index(i) for i in want.ids]
    for k, j in enumerate(order):
        assert got.starts[j] == want.starts[k] and got.cat[j].tolist() == want.cat[k].tolist()
        np.testing.assert_array_equal(got.targets[j], want.targets[k])
        np.testing.assert_allclose(got.dynamic_feat[j], want.dynamic_feat[k], rtol=1e-6)
    first = {sid: next(n for n, r in enumerate(rows) if r[0] == sid) for sid in got.ids}  # each series' first row
    assert got.where == [f"{path}:row {first[i] + 1}" if kind == "parquet" else f"{path}:{first[i] + 2}"
                         for i in got.ids]

    seen: dict[str, list] = {s["id"]: [] for s in series}
    with open_source(path, format="series", batch_size=7, **kw) as src:
        for n, b in enumerate(src):
            in_batch = rows[7 * n:7 * n + 7]
            assert sorted(b.X.ids) == sorted({r[0] for r in in_batch})
            assert b.cursor["line" if kind != "parquet" else "row"] == 7 * n + len(in_batch) + (kind != "parquet")
            for i, sid in enumerate(b.X.ids):
                seen[sid] += list(zip(b.X.times[i], b.X.targets[i].tolist(), strict=True))
    for sid, points in seen.items():
        mine = [(np.datetime64(t, "s"), v) for i, t, v, _, _ in rows if i == sid]
        assert [p[0] for p in points] == [p[0] for p in mine]
        np.testing.assert_array_equal([p[1] for p in points], np.float32([p[1] for p in mine]))


def test_interleaved_rows_are_stretches_a_deepar_state_extends(tmp_path: Path) -> None:
    """Rows of many series interleaved by time, 8 rows a batch: each series arrives in
    stretches of a point or two, and the state's tails join them into the whole series."""
    series = make_series(n=4, T=24, seed=1)
    path = write_csv(tmp_path / "t.csv", table_rows(series), header="id,time,target,price,store")
    result = onepass.train("deepar", path, format="series", params=TINY_DEEPAR, batch_size=8, seed=0)
    state = result.state
    assert state.n_rows_seen_ > len(series) * 4  # many stretches per series
    with open_source(write_jsonl(tmp_path / "t.jsonl", series), format="series") as src:
        whole = next(iter(src)).X.on_grid(HOUR)
    assert set(state.tails_) == set(whole.ids)
    for i, sid in enumerate(whole.ids):
        start, values, _ = state.tails_[sid]
        keep = len(values)
        assert keep == min(len(whole.targets[i]), max(state.lags) + state.window)
        np.testing.assert_array_equal(values, whole.targets[i][-keep:])
        assert start == whole.starts[i] + np.timedelta64(len(whole.targets[i]) - keep, "h")


def _with_bad_rows(rows: list[tuple], every: int) -> list[str]:
    lines = [f"{i},{str(t).replace('T', ' ')},{'' if np.isnan(v) else v},{p},{c}" for i, t, v, p, c in rows]
    for k in range(every // 2, len(lines), every):
        lines[k] = lines[k].replace("2026-03-01", "2026-13-01")
    return lines


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("batch_size", [1, 4, 9])
def test_resume_from_every_cursor_gives_the_same_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         kind: str, batch_size: int) -> None:
    """Two files, bad rows set aside, tiny CSV blocks (a resumed read cuts them elsewhere),
    Parquet row groups of 5: the rest of the read from any batch's cursor is the rest of
    the unbroken read, record for record, cursor for cursor, counts included."""
    monkeypatch.setattr(_text, "BLOCK_BYTES", 97)
    rows = table_rows(make_series(n=3, T=8, seed=2))
    half = len(rows) // 2
    for k, part in enumerate((rows[:half], rows[half:])):
        if kind == "csv":
            lines = _with_bad_rows(part, 5)
            (tmp_path / f"p{k}.csv").write_text("item_id,timestamp,value,price,store\n" + "\n".join(lines) + "\n")
        else:
            part = [(i, t, v, np.nan if n % 5 == 2 else p, c) for n, (i, t, v, p, c) in enumerate(part)]
            write_parquet(tmp_path / f"p{k}.parquet", part, row_group_size=5)
    quarantine = tmp_path / "q.jsonl"
    kw = {"batch_size": batch_size, "on_bad_record": "quarantine", "quarantine_file": quarantine}
    full = records(tmp_path / f"*.{kind}", **kw)
    held = quarantine.read_text()
    assert held.count("\n") >= 4
    ends = [k for k, r in enumerate(full) if "cursor" in r]
    for k in ends[:-1]:
        rest = records(tmp_path / f"*.{kind}", cursor=full[k]["cursor"], **kw)
        same(rest, full[k + 1:])
        assert quarantine.read_text() == held


def test_bad_rows_are_named_by_file_line_and_column(tmp_path: Path) -> None:
    good = "a,2026-03-01 00:00:00,1,2,0"
    bad = {3: ("a,yesterday,1,2,0", "timestamp", "'yesterday' is not a date and time"),
           4: ("b,2026-03-01 00:00:00,abc,2,0", "value", "'abc' is not a number"),
           5: ("b,2026-03-01 01:00:00,1,2,1.5", "store", "'1.5' is not a whole number >= 0"),
           6: (",2026-03-01 01:00:00,1,2,1", "item_id", "series id missing"),
           7: ("c,2026-03-01 01:00:00,1,,1", "price", "covariate missing"),
           8: ("c,2026-03-01 02:00:00,inf,2,1", "value", "inf is not allowed in the target"),
           9: ("c,2026-03-01 03:00:00,1,2", None, "expected 5 columns, got 4"),
           10: ("d,2026-03-01 03:00:00,1,2,-1", "store", "-1 is not a whole number >= 0"),
           11: ("d,,1,2,1", "timestamp", "timestamp missing")}
    lines = ["item_id,timestamp,value,price,store", good] + [bad[k][0] for k in sorted(bad)] + [
        "d,2026-03-01 04:00:00,,2,3"]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    kw = {"format": "series", "dynamic_feat_columns": ["price"], "cat_columns": ["store"]}
    with pytest.raises(BadRecordError, match=r"line 3 of .*t\.csv column 'timestamp': 'yesterday' is not"):
        list(open_source(path, **kw))
    q = tmp_path / "q.jsonl"
    with open_source(path, on_bad_record="quarantine", quarantine_file=q, **kw) as src:
        (batch,) = list(src)
    assert batch.X.ids == ["a", "d"] and np.isnan(batch.X.targets[1][0]) and batch.X.where == [f"{path}:2",
                                                                                               f"{path}:12"]
    held = [json.loads(line) for line in q.read_text().splitlines()]
    assert [h["line"] for h in held] == sorted(bad)
    for h in held:
        row, column, reason = bad[h["line"]]
        assert (h["source"], h["column"], h["raw"]) == (str(path), column, row) and reason in h["reason"], h

    table = pa.table({"id": ["a", "a", "b", "b"],
                      "timestamp": pa.array([T0, None, T0, T0], pa.timestamp("s")),
                      "value": [1.0, 2.0, 3.0, 4.0], "k": [0.0, 1.0, 1.5, 2.0]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(BadRecordError, match=r"line 2 of .*t\.parquet column 'timestamp': timestamp missing"):
        list(open_source(tmp_path / "t.parquet", format="series", cat_columns=["k"]))
    with open_source(tmp_path / "t.parquet", format="series", cat_columns=["k"], on_bad_record="skip") as src:
        (batch,) = list(src)
        assert src.n_skipped == 2 and batch.X.where == [f"{tmp_path / 't.parquet'}:row 1",
                                                        f"{tmp_path / 't.parquet'}:row 4"]


def test_times_as_text_with_zones_and_parquet_times(tmp_path: Path) -> None:
    """ISO 8601 text with or without seconds, fractions or a zone (read as UTC); Parquet
    timestamps in any unit or zone, dates, and text."""
    path = tmp_path / "t.csv"
    path.write_text("id,date,value\na,2026-03-01,1\na,2026-03-02 00:00,2\na,2026-03-03T01:00:00+01:00,3\n"
                    "a,2026-03-04T00:00:00.250Z,4\n")
    with open_source(path, format="series") as src:
        (batch,) = list(src)
    np.testing.assert_array_equal(batch.X.times[0], T0 + np.arange(4).astype("timedelta64[D]"))
    days = T0 + np.arange(3).astype("timedelta64[D]")
    for times in (pa.array(days.astype("datetime64[ms]"), pa.timestamp("ms", tz="Europe/Paris")),
                  pa.array(days.astype("datetime64[D]")), pa.array([str(d) for d in days])):
        pq.write_table(pa.table({"item_id": [7, 7, 7], "time": times, "target": pa.array([1, 2, 3], pa.int32())}),
                       tmp_path / "t.parquet")
        with open_source(tmp_path / "t.parquet", format="series") as src:
            (batch,) = list(src)
        assert batch.X.ids == ["7"]
        np.testing.assert_array_equal(batch.X.times[0], days)
        np.testing.assert_array_equal(batch.X.targets[0], [1, 2, 3])


def test_columns_by_default_name_index_or_option_and_what_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("store,day,sales\n1,2026-03-01,5\n")
    with pytest.raises(InvalidParameterError, match=r"no 'id' or 'item_id' for the series id; no 'timestamp' or "
                       r"'time' or 'date' for the timestamp; no 'target' or 'value' for the target.*series_id_column="):
        list(open_source(path, format="series"))
    with open_source(path, series_id_column="store", timestamp_column=1, target_column="sales") as src:
        assert src.format == "series" and next(iter(src)).X.ids == ["1"]  # the options imply the format
    plain = tmp_path / "plain.csv"
    plain.write_text("1,2026-03-01 00:00:00,5\n1,2026-03-01 01:00:00,6\n")
    with open_source(plain, series_id_column=0, timestamp_column=1, target_column=2) as src:
        (batch,) = list(src)
        np.testing.assert_array_equal(batch.X.targets[0], [5, 6])  # no header: the first line is data
    with pytest.raises(InvalidParameterError, match="given twice"):
        list(open_source(path, series_id_column="store", timestamp_column="day", target_column="store"))
    with pytest.raises(InvalidParameterError, match="format='series', not 'csv'"):
        open_source(path, format="csv", series_id_column="store")
    (tmp_path / "t.jsonl").write_text("{}\n")
    with pytest.raises(InvalidParameterError, match="SageMaker's JSON lines"):
        open_source(tmp_path / "t.jsonl", format="series", series_id_column="store")
    with pytest.raises(InvalidParameterError, match="one kind of series file"):
        open_source([str(path), str(tmp_path / "t.jsonl")], format="series")
    with pytest.raises(InvalidParameterError, match="cat_columns"):
        open_source(path, format="series", cat_columns=[1.5])


def test_the_cli_flags_name_the_columns(tmp_path: Path) -> None:
    from onepass.cli import main

    series = make_series(n=3, T=12, seed=3)
    rows = [(i, t, v, p, c) for i, t, v, p, c in table_rows(series)]
    path = write_csv(tmp_path / "t.csv", rows, header="store,day,sales,price,region")
    params = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_DEEPAR.items()]
    result = CliRunner().invoke(main, [
        "train", "deepar", "--data", str(path), "--format", "series", "--series-id-column", "store",
        "--timestamp-column", "day", "--target-column", "2", "--dynamic-feat-columns", "price",
        "--cat-columns", "region", "--batch-size", "16", "--out", str(tmp_path / "m"), "--quiet", *params])
    assert result.exit_code == 0, result.output
    state, _ = onepass.load_checkpoint(tmp_path / "m" / "state")
    assert set(state.tails_) == {"s0", "s1", "s2"} and state.n_dynamic_ == 1 and state.cardinality_ == [3]
    result = CliRunner().invoke(main, ["train", "deepar", "--data", str(path), "--quiet", *params,
                                       "--out", str(tmp_path / "m2")])
    assert result.exit_code == 2 and "--series-id-column" in result.output
