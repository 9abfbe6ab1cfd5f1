"""DeepAR: onepass DeepAR vs GluonTS's DeepAREstimator (PyTorch) and statsforecast's AutoETS and SeasonalNaive.

Two sets of related series, both made on this machine with no download, written as
SageMaker DeepAR's JSON lines (``{"start": ..., "target": [...], "cat": [...]}``, missing
values as ``"NaN"``): a training file without the last ``prediction_length`` points of
each series, and a test file with them, as SageMaker's train and test channels hold them.

- ``generated``: 2,000 hourly series (quick: 200) of 6 weeks at most, all ending together
  (lengths 3 to 6 weeks, so starts differ), 8 groups (``cat``). Each series mixes its
  group's daily and weekly shapes with another group's, in proportions of its own; its
  scale is log-uniform over 1..10^4, its trend a log-level drift of N(0, 0.5) over six
  weeks, its noise AR(1) in log space. One in ten is an intermittent count series
  (Poisson, mean 0.05 to 2 an hour, the same shapes). 2% of the points, training and test
  alike, are missing. Forecast 24 hours.
- ``fertility``: statsmodels' ``fertility`` data set (World Bank total fertility rate,
  births per woman, yearly 1960-2011; 2012-2013 are empty in it): one series per country
  with at least half its training years present and a value in the test years (about 200
  countries); forecast the last 6 years from the years before. Yearly, no ``cat``.
  Chosen as statsmodels' one data set of many related series (its ``co2``, ``sunspots``,
  ``elnino`` and ``nile`` are single series, ``macrodata`` 12 unlike ones).

Every method forecasts every series of the test channel from its training part and is
scored by the same function, ``onepass.algorithms.deepar._metrics.forecast_metrics``
(GluonTS's Evaluator definitions, quantiles 0.1..0.9): mean_wQuantileLoss, RMSE of the
mean forecast, MASE of the median against the seasonal naive in-sample error (season 24
hourly, 1 yearly, GluonTS's defaults). Each case runs in its own worker; training time is
the fit only (data already parsed), forecast time per series the forecasting call over
all series divided by their number, peak MB the process's high-water mark (after
training, and at the end, forecasts included).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks._registry import Config, Family, Result, Skip, Table, Task, case, find_result
from benchmarks.render import fmt_int, fmt_mb, fmt_opt, load_cells, target_cell

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
NUM_SAMPLES = 100  # sample paths per forecast (GluonTS's num_parallel_samples default; SageMaker's num_samples)

GEN = {"n_series": 2000, "max_days": 42, "min_days": 21, "n_groups": 8, "trend_sd": 0.5, "missing": 0.02,
       "intermittent": 0.1, "start": "2026-01-01 00:00:00"}
QUICK_SERIES = 100
GEN_CHUNK = 500  # series generated per random stream

# per data set: horizon, context, frequency (SageMaker's time_freq for onepass, pandas' for GluonTS), season
KINDS = {
    "generated": {"prediction_length": 24, "context_length": 72, "time_freq": "H", "gluonts_freq": "h",
                  "season": 24},
    "fertility": {"prediction_length": 6, "context_length": 12, "time_freq": "12M", "gluonts_freq": "Y",
                  "season": 1},
}
FERTILITY_YEARS = (1960, 2011)  # the last year with values in statsmodels' copy

# Training budgets, stated in the tables. GluonTS: max_epochs x num_batches_per_epoch
# mini-batches of BATCH_SIZE windows (its defaults, 100 x 50 x 32, take too long on 2 cores).
BATCH_SIZE = 32
GLUONTS_BUDGET = {"epochs": 10, "batches": 50}
QUICK_GLUONTS_BUDGET = {"epochs": 2, "batches": 20}

TARGET_VS_NAIVE = 0.85  # onepass mean_wQuantileLoss / SeasonalNaive's, at most


# --- data --------------------------------------------------------------------------------


def data_dir(p: dict) -> Path:
    if p["kind"] == "generated":
        g = GEN
        return Path(p["data_dir"]) / (f"deepar_gen_n{p['n_series']}_d{g['min_days']}-{g['max_days']}_g{g['n_groups']}"
                                      f"_m{g['missing']:g}_i{g['intermittent']:g}_p{p['prediction_length']}"
                                      f"_s{p['seed']}")
    return Path(p["data_dir"]) / f"deepar_fertility_{FERTILITY_YEARS[0]}-{FERTILITY_YEARS[1]}_p{p['prediction_length']}"


def files(p: dict) -> dict[str, Path]:
    d = data_dir(p)
    return {"meta": d / "meta.json", "train": d / "train.json", "test": d / "test.json"}


def _number(v: float) -> float | str:
    return "NaN" if not np.isfinite(v) else float(f"{v:.6g}")


def _line(start: str, target: np.ndarray, cat: list[int] | None) -> str:
    rec = {"start": start, "target": [_number(v) for v in target]}
    if cat is not None:
        rec["cat"] = cat
    return json.dumps(rec, separators=(",", ":")) + "\n"


def _shapes(rng: np.random.Generator, n: int, period: int, harmonics: int) -> np.ndarray:
    """``n`` smooth periodic shapes of ``period`` steps, each scaled to max |value| 1."""
    t = 2 * np.pi * np.arange(period) / period
    out = np.zeros((n, period))
    for k in range(1, harmonics + 1):
        a, b = rng.normal(size=(2, n, 1)) / k
        out += a * np.cos(k * t) + b * np.sin(k * t)
    return out / np.abs(out).max(axis=1, keepdims=True)


def _generated_chunk(p: dict, part: int, n: int, daily: np.ndarray, weekly: np.ndarray):
    """``n`` series: (group, start offset in hours, full target incl. the held-out points)."""
    from scipy.signal import lfilter

    g = GEN
    rng = np.random.default_rng([p["seed"], 0xDEE9A2, part])
    total = g["max_days"] * 24 + p["prediction_length"]
    t = np.arange(total)
    n_groups = g["n_groups"]
    group = rng.integers(0, n_groups, n)
    other = (group + rng.integers(1, n_groups, n)) % n_groups
    a, b = rng.uniform(0.5, 1.0, (2, n, 1))
    day_shape = a * daily[group] + (1 - a) * daily[other]  # (n, 24)
    week_shape = b * weekly[group] + (1 - b) * weekly[other]  # (n, 7)
    amp_d, amp_w = rng.uniform(0.2, 0.8, (n, 1)), rng.uniform(0.0, 0.4, (n, 1))
    season = 1 + amp_d * day_shape[:, t % 24] + amp_w * week_shape[:, (t // 24) % 7]
    season = np.maximum(season, 0.05)
    drift = np.exp(rng.normal(0, g["trend_sd"], (n, 1)) * t / total)
    sigma = rng.uniform(0.05, 0.2, (n, 1))
    noise = lfilter([1.0], [1.0, -0.7], rng.normal(size=(n, total)) * sigma * np.sqrt(1 - 0.7 ** 2), axis=1)
    scale = 10 ** rng.uniform(0, 4, (n, 1))
    y = scale * drift * season * np.exp(noise)
    is_count = rng.random(n) < g["intermittent"]
    rate = 10 ** rng.uniform(np.log10(0.05), np.log10(2.0), (n, 1))
    counts = rng.poisson(rate * drift * season).astype(np.float64)
    y[is_count] = counts[is_count]
    y[rng.random((n, total)) < g["missing"]] = np.nan
    days = rng.integers(g["min_days"], g["max_days"] + 1, n)
    offset = (g["max_days"] - days) * 24  # hours after the global start
    return group, offset, y, is_count


def _make_generated(p: dict, f: dict[str, Path]) -> dict:
    g = GEN
    rng = np.random.default_rng([p["seed"], 0x5EA5])
    daily, weekly = _shapes(rng, g["n_groups"], 24, 3), _shapes(rng, g["n_groups"], 7, 2)
    start0 = datetime.fromisoformat(g["start"])
    P = p["prediction_length"]
    n_points = n_missing = n_count = 0
    with open(f["train"].with_suffix(".tmp"), "w") as tr, open(f["test"].with_suffix(".tmp"), "w") as te:
        for part, first in enumerate(range(0, p["n_series"], GEN_CHUNK)):
            n = min(GEN_CHUNK, p["n_series"] - first)
            group, offset, y, is_count = _generated_chunk(p, part, n, daily, weekly)
            for i in range(n):
                target = y[i, offset[i]:]
                start = (start0 + timedelta(hours=int(offset[i]))).strftime("%Y-%m-%d %H:%M:%S")
                tr.write(_line(start, target[:-P], [int(group[i])]))
                te.write(_line(start, target, [int(group[i])]))
                n_points += target.size
                n_missing += int(np.isnan(target).sum())
            n_count += int(is_count.sum())
    for k in ("train", "test"):
        f[k].with_suffix(".tmp").replace(f[k])
    return {"n_series": p["n_series"], "n_points": n_points, "missing_fraction": n_missing / n_points,
            "n_intermittent": n_count, "n_groups": g["n_groups"], "freq": "hourly"}


def _make_fertility(p: dict, f: dict[str, Path]) -> dict:
    from statsmodels.datasets import fertility

    df = fertility.load_pandas().data
    years = [str(y) for y in range(FERTILITY_YEARS[0], FERTILITY_YEARS[1] + 1)]
    values = df[years].to_numpy(np.float64)
    P = p["prediction_length"]
    train, test = values[:, :-P], values[:, -P:]
    keep = (np.isfinite(train).mean(axis=1) >= 0.5) & np.isfinite(test).any(axis=1)
    start = f"{FERTILITY_YEARS[0]}-01-01 00:00:00"
    with open(f["train"].with_suffix(".tmp"), "w") as tr, open(f["test"].with_suffix(".tmp"), "w") as te:
        for row in values[keep]:
            tr.write(_line(start, row[:-P], None))
            te.write(_line(start, row, None))
    for k in ("train", "test"):
        f[k].with_suffix(".tmp").replace(f[k])
    import statsmodels

    kept = values[keep]
    return {"n_series": int(keep.sum()), "n_countries": int(values.shape[0]), "n_points": int(kept.size),
            "missing_fraction": float(np.isnan(kept).mean()), "years": list(FERTILITY_YEARS), "freq": "yearly",
            "source": "statsmodels.datasets.fertility (World Bank, SP.DYN.TFRT.IN)",
            "statsmodels": statsmodels.__version__,
            "countries": df.loc[keep, "Country Code"].tolist()}


@case("deepar.data")
def make_data(p: dict) -> dict:
    f = files(p)
    if f["meta"].exists():
        return {"made": []}
    data_dir(p).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = _make_generated(p, f) if p["kind"] == "generated" else _make_fertility(p, f)
    meta["bytes"] = {k: f[k].stat().st_size for k in ("train", "test")}
    tmp = f["meta"].with_name("meta.json.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(f["meta"])  # last: its presence says the data set is complete
    return {"generated": True, "path": str(data_dir(p)), "wall_s": time.perf_counter() - t0,
            "bytes": sum(meta["bytes"].values()),
            **{k: meta[k] for k in ("n_series", "n_points")}}


def _meta(p: dict) -> dict:
    return json.loads(files(p)["meta"].read_text())


def _read(path: Path) -> list[dict]:
    """The records of a JSON lines file, targets as float64 arrays (``"NaN"`` -> nan)."""
    out = []
    with open(path) as fh:
        for line in fh:
            rec = json.loads(line)
            rec["target"] = np.array([np.nan if v is None or v == "NaN" else v for v in rec["target"]],
                                     dtype=np.float64)
            out.append(rec)
    return out


# --- measuring ---------------------------------------------------------------------------


def _metrics_module():
    """``_metrics.py`` loaded by its path: it imports nothing from its package, so the
    anchors are scored whatever state the rest of the package is in."""
    import importlib.util

    import onepass

    path = Path(onepass.__file__).parent / "algorithms" / "deepar" / "_metrics.py"
    spec = importlib.util.spec_from_file_location("onepass_deepar_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _score(p: dict, train: list[dict], forecasts: list[dict]) -> dict:
    test = _read(files(p)["test"])
    P = p["prediction_length"]
    if len(forecasts) != len(test):
        raise RuntimeError(f"{len(forecasts)} forecasts for {len(test)} test series")
    m = _metrics_module().forecast_metrics([r["target"][-P:] for r in test], forecasts, QUANTILES,
                                           [r["target"] for r in train], KINDS[p["kind"]]["season"])
    keep = ("RMSE", "mean_wQuantileLoss", "MASE", "ND", "n_series", "n_points",
            *(f"wQuantileLoss[{q:g}]" for q in QUANTILES))
    return {k: m[k] for k in keep}


def _from_samples(samples: np.ndarray) -> dict:
    """SageMaker's response shape from sample paths ``(num_samples, horizon)``."""
    qs = np.quantile(samples, QUANTILES, axis=0)
    return {"mean": samples.mean(axis=0).tolist(), "quantiles": {f"{q:g}": qs[j].tolist() for j, q in enumerate(QUANTILES)}}


def _peak_mb() -> float:
    from benchmarks._measure import peak_rss_mb

    return peak_rss_mb()


@case("deepar.gluonts")
def gluonts_case(p: dict) -> dict:
    """GluonTS's PyTorch DeepAREstimator, its defaults (2 layers of 40 LSTM cells, Student-t,
    lr 1e-3, dropout 0.1, batch 32) but the budget: ``epochs`` x ``batches`` mini-batches."""
    try:
        import torch
        from gluonts.dataset.common import ListDataset
        from gluonts.torch.model.deepar import DeepAREstimator
    except ImportError:
        raise Skip("gluonts is not installed (pip install -e '.[bench]')") from None
    import logging
    import tempfile

    from benchmarks._measure import Meter

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "gluonts"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.manual_seed(p["seed"])
    np.random.seed(p["seed"])
    k = KINDS[p["kind"]]
    train = _read(files(p)["train"])
    has_cat = "cat" in train[0]
    freq = k["gluonts_freq"]

    def entry(r):
        e = {"start": r["start"], "target": r["target"].astype(np.float32)}
        if has_cat:
            e["feat_static_cat"] = r["cat"]
        return e

    data = ListDataset([entry(r) for r in train], freq=freq)
    budget = p["budget"]
    with tempfile.TemporaryDirectory() as tmp:
        est = DeepAREstimator(
            freq=freq, prediction_length=k["prediction_length"], context_length=k["context_length"],
            num_feat_static_cat=1 if has_cat else 0,
            cardinality=[GEN["n_groups"]] if has_cat else None,
            batch_size=BATCH_SIZE, num_batches_per_epoch=budget["batches"], num_parallel_samples=NUM_SAMPLES,
            trainer_kwargs={"max_epochs": budget["epochs"], "accelerator": "cpu", "enable_progress_bar": False,
                            "enable_model_summary": False, "logger": False, "default_root_dir": tmp})
        with Meter() as m:
            predictor = est.train(data, cache_data=True)
        peak_train = _peak_mb()
        t0 = time.perf_counter()
        forecasts = [_from_samples(np.asarray(fc.samples, dtype=np.float64)) for fc in predictor.predict(data)]
        forecast_s = time.perf_counter() - t0
    return {**m.as_dict(), "train_s": m.wall_s, "forecast_s": forecast_s,
            "forecast_ms_per_series": 1000 * forecast_s / len(train), "peak_train_mb": peak_train,
            "peak_end_mb": _peak_mb(), "n_train_series": len(train), "threads": torch.get_num_threads(),
            **_score(p, train, forecasts)}


def _fill(y: np.ndarray, season: int) -> np.ndarray:
    """Missing values filled for statsforecast, which takes none: with the value a season
    before, else the one before; a leading gap with the first value observed."""
    y = y.copy()
    for i in np.flatnonzero(np.isnan(y)):
        if i >= season and np.isfinite(y[i - season]):
            y[i] = y[i - season]
        elif i >= 1 and np.isfinite(y[i - 1]):
            y[i] = y[i - 1]
    if np.isnan(y).any():
        first = np.flatnonzero(np.isfinite(y))
        y[np.isnan(y)] = y[first[0]] if first.size else 0.0
    return y


@case("deepar.statsforecast")
def statsforecast_case(p: dict) -> dict:
    """statsforecast ``AutoETS`` or ``SeasonalNaive`` over every series, a model per series:
    AutoETS on both cores (``n_jobs=-1``, worker processes), SeasonalNaive in this one;
    quantiles from its prediction intervals (levels 20..80: lo-80 is the 0.1 quantile,
    hi-80 the 0.9, the point forecast the mean and the median)."""
    try:
        import pandas as pd
        from statsforecast import StatsForecast
        from statsforecast.models import AutoETS, SeasonalNaive
    except ImportError:
        raise Skip("statsforecast is not installed (pip install -e '.[bench]')") from None
    from benchmarks._measure import Meter

    k = KINDS[p["kind"]]
    season, P = p.get("season", k["season"]), k["prediction_length"]
    train = _read(files(p)["train"])
    ids = np.repeat(np.arange(len(train)), [r["target"].size for r in train])
    ds = np.concatenate([np.arange(r["target"].size) for r in train])
    y = np.concatenate([_fill(r["target"], season) for r in train])
    df = pd.DataFrame({"unique_id": ids, "ds": ds, "y": y})
    model = AutoETS(season_length=season) if p["model"] == "AutoETS" else SeasonalNaive(season_length=season)
    sf = StatsForecast(models=[model], freq=1, n_jobs=-1 if p["model"] == "AutoETS" else 1)
    levels = sorted({round(100 * abs(1 - 2 * q)) for q in QUANTILES if q != 0.5})
    with Meter() as m:
        sf.fit(df)
    peak_train = _peak_mb()
    t0 = time.perf_counter()
    out = sf.predict(h=P, level=levels)
    forecast_s = time.perf_counter() - t0
    name = p["model"]
    out = out.sort_values(["unique_id", "ds"])
    cols = {}
    for q in QUANTILES:
        if q == 0.5:
            cols[q] = name
        else:
            lv = round(100 * abs(1 - 2 * q))
            cols[q] = f"{name}-{'lo' if q < 0.5 else 'hi'}-{lv}"
    arrays = {q: out[c].to_numpy(np.float64).reshape(len(train), P) for q, c in cols.items()}
    point = out[name].to_numpy(np.float64).reshape(len(train), P)
    forecasts = [{"mean": point[i].tolist(), "quantiles": {f"{q:g}": arrays[q][i].tolist() for q in QUANTILES}}
                 for i in range(len(train))]
    return {**m.as_dict(), "train_s": m.wall_s, "forecast_s": forecast_s,
            "forecast_ms_per_series": 1000 * forecast_s / len(train), "peak_train_mb": peak_train,
            "peak_end_mb": _peak_mb(), "n_train_series": len(train), "season": season, **_score(p, train, forecasts)}


DEEPAR_ALGO = "deepar"


@case("deepar.onepass")
def onepass_case(p: dict) -> dict:
    """``onepass.train("deepar", train.json, format="series", ...)`` then ``model.forecast``
    of every training series, as SageMaker's endpoint answers them."""
    from benchmarks._measure import Meter

    try:
        import onepass
        from onepass.state import get_algorithm

        get_algorithm(DEEPAR_ALGO)
    except Exception as e:
        raise Skip(f"not available: the deepar algorithm is not in this tree yet ({type(e).__name__})") from None
    k = KINDS[p["kind"]]
    path = files(p)["train"]
    train = _read(path)
    params = {"context_length": k["context_length"], "prediction_length": k["prediction_length"],
              "time_freq": k["time_freq"]}
    n_points = sum(len(r["target"]) for r in train)
    if p.get("windows"):  # GluonTS's budget: as many windows in one pass over the series
        params["windows_per_prediction_length"] = p["windows"] * k["prediction_length"] / n_points
    with Meter() as m:
        result = onepass.train(DEEPAR_ALGO, str(path), format="series", params=params, seed=p["seed"],
                               epochs=p["epochs"])
    peak_train = _peak_mb()
    instances = []
    for r in train:
        inst = {"start": r["start"], "target": [None if np.isnan(v) else float(v) for v in r["target"]]}
        if "cat" in r:
            inst["cat"] = r["cat"]
        instances.append(inst)
    t0 = time.perf_counter()
    forecasts = result.model.forecast(instances, num_samples=NUM_SAMPLES, quantiles=list(QUANTILES), seed=p["seed"])
    forecast_s = time.perf_counter() - t0
    return {**m.as_dict(), "train_s": m.wall_s, "forecast_s": forecast_s,
            "forecast_ms_per_series": 1000 * forecast_s / len(train), "peak_train_mb": peak_train,
            "peak_end_mb": _peak_mb(), "n_train_series": len(train), "params": params,
            "windows_trained": result.state.n_windows_trained_,
            **_score(p, train, [dict(fc) for fc in forecasts])}


# --- plan and render ---------------------------------------------------------------------


def _base(cfg: Config, kind: str) -> dict:
    k = KINDS[kind]
    base = {"data_dir": str(cfg.data_dir), "kind": kind, "seed": cfg.seed, "prediction_length": k["prediction_length"]}
    if kind == "generated":
        base["n_series"] = QUICK_SERIES if cfg.quick else GEN["n_series"]
    return base


def prepare(cfg: Config) -> list[Task]:
    return [Task("deepar.data", _base(cfg, kind), timeout_s=1800.0) for kind in KINDS]


def plan(cfg: Config) -> list[Task]:
    budget = QUICK_GLUONTS_BUDGET if cfg.quick else GLUONTS_BUDGET
    tasks = []
    for kind, k in KINDS.items():
        base = _base(cfg, kind)
        windows = budget["epochs"] * budget["batches"] * BATCH_SIZE
        tasks.append(Task("deepar.onepass", {**base, "epochs": 1, "windows": windows},
                          f"{kind}: onepass DeepAR, one pass, GluonTS's budget ({windows:,} windows of {BATCH_SIZE})",
                          timeout_s=3600.0))
        tasks.append(Task("deepar.onepass", {**base, "epochs": 1},
                          f"{kind}: onepass DeepAR, one pass, its defaults (4 windows per prediction length; info)",
                          timeout_s=3600.0))
        tasks.append(Task("deepar.gluonts", {**base, "budget": budget},
                          f"{kind}: GluonTS DeepAREstimator (torch), {budget['epochs']} epochs x {budget['batches']} "
                          f"batches of {BATCH_SIZE}", timeout_s=3600.0))
        tasks.append(Task("deepar.statsforecast", {**base, "model": "AutoETS"},
                          f"{kind}: statsforecast AutoETS (season {k['season']})", timeout_s=3600.0))
        tasks.append(Task("deepar.statsforecast", {**base, "model": "SeasonalNaive"},
                          f"{kind}: statsforecast SeasonalNaive (season {k['season']})"))
        if kind == "generated":
            tasks.append(Task("deepar.statsforecast", {**base, "model": "SeasonalNaive", "season": 168},
                              f"{kind}: statsforecast SeasonalNaive (season 168, weekly; no target)"))
    return tasks


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    tasks = plan(cfg)

    def get(case_name: str, kind: str, **match) -> Result | None:
        return find_result(tasks, results, case_name, kind=kind, **match)

    def wql(r: Result) -> float:
        return r.med("mean_wQuantileLoss")

    tables = []
    cols = ["method", "series", "mean wQuantileLoss", "wQL[0.5]", "wQL[0.9]", "RMSE", "MASE", "train s",
            "forecast ms/series", "peak MB train (base)", "peak MB end", "cpu/wall", "others", "runs"]
    for kind, k in KINDS.items():
        p = _base(cfg, kind)
        try:
            meta = _meta(p)
        except OSError:
            meta = {}
        rows = []
        for t in tasks:
            if t.params["kind"] != kind:
                continue
            r = results.get(t.key) or Result(t)
            if r.problem:
                rows.append([t.label, r.problem])
                continue
            rows.append([t.label, fmt_int(r.first("n_series")), fmt_opt(r.med("mean_wQuantileLoss")),
                         fmt_opt(r.med("wQuantileLoss[0.5]")), fmt_opt(r.med("wQuantileLoss[0.9]")), fmt_opt(r.med("RMSE"), ",.4g"),
                         fmt_opt(r.med("MASE"), ".3f"), fmt_opt(r.med("train_s"), ".2f"), fmt_opt(r.med("forecast_ms_per_series"), ".2f"),
                         fmt_mb(r.med("peak_train_mb"), r.med("base_rss_mb")), fmt_mb(r.med("peak_end_mb")),
                         *load_cells(r), str(len(r.ok_runs))])
        if kind == "generated":
            what = (f"{meta.get('n_series', 0):,} hourly series (lengths {GEN['min_days']}-{GEN['max_days']} days, "
                    f"{meta.get('n_points', 0):,} points), {GEN['n_groups']} groups, scales 1..1e4, "
                    f"{meta.get('n_intermittent', 0)} intermittent count series, "
                    f"{100 * meta.get('missing_fraction', 0):.1f}% missing")
        else:
            what = (f"World Bank fertility rate of {meta.get('n_series', 0)} countries, yearly "
                    f"{FERTILITY_YEARS[0]}-{FERTILITY_YEARS[1]}, {100 * meta.get('missing_fraction', 0):.1f}% "
                    "missing (statsmodels.datasets.fertility)")
        tables.append(Table(
            f"DeepAR, {kind}: {what}; forecast {k['prediction_length']} steps from a context of "
            f"{k['context_length']}", cols, rows,
            notes=["mean wQuantileLoss (lower is better): GluonTS's, the mean over quantiles 0.1..0.9 of "
                   "2 * sum(quantile loss) / sum(|actual|); RMSE of the mean forecast; MASE of the median over the "
                   f"in-sample seasonal naive error (season {k['season']}); missing actuals left out; all from "
                   "onepass.algorithms.deepar._metrics.forecast_metrics, the same code for every method.",
                   "train s: the fit only, data already parsed (GluonTS: ListDataset in memory; statsforecast: a "
                   "pandas frame; onepass: reading the JSON lines file is inside, as it streams it); forecast "
                   f"ms/series: one forecasting call over every series ({NUM_SAMPLES} sample paths for the "
                   "DeepARs) / series. peak MB: the worker's high-water mark after training (base: before it, "
                   "data loaded) and at the end.",
                   f"GluonTS DeepAREstimator: its defaults (2 x 40 LSTM, Student-t, lr 1e-3, dropout 0.1, batch "
                   f"{BATCH_SIZE}, lags and time features for the frequency, scaling) but the budget; "
                   f"cat as a static categorical ({GEN['n_groups']} values) where the data has one; forecasts "
                   "from its sample paths (mean and empirical quantiles).",
                   "statsforecast: one model per series; AutoETS with n_jobs=-1 (2 worker processes, whose CPU "
                   "and memory its cpu/wall and peak MB do not count), SeasonalNaive in the worker; its prediction intervals at levels 20/40/60/80 "
                   "as the quantiles 0.1..0.9 (the point forecast as the mean and median); missing training "
                   "values filled with the value a season before, else the one before (it takes none)."]))

    targets = []
    for kind in KINDS:
        one, gl = get("deepar.onepass", kind, windows=(QUICK_GLUONTS_BUDGET if cfg.quick else GLUONTS_BUDGET)["epochs"]
                      * (QUICK_GLUONTS_BUDGET if cfg.quick else GLUONTS_BUDGET)["batches"] * BATCH_SIZE), \
            get("deepar.gluonts", kind)
        naive = get("deepar.statsforecast", kind, model="SeasonalNaive", season=None)
        if one and gl:
            x = wql(one) / wql(gl)
            targets.append([f"{kind}: onepass mean wQuantileLoss / GluonTS DeepAR's ({wql(one):.4f} / "
                            f"{wql(gl):.4f})", f"{x:.3f}", "<= 1", target_cell(x <= 1.0)])
        else:
            targets.append([f"{kind}: onepass mean wQuantileLoss / GluonTS DeepAR's", "-", "<= 1", "-"])
        if one and naive:
            x = wql(one) / wql(naive)
            targets.append([f"{kind}: onepass mean wQuantileLoss / SeasonalNaive's ({wql(one):.4f} / "
                            f"{wql(naive):.4f})", f"{x:.3f}", f"<= {TARGET_VS_NAIVE}", target_cell(x <= TARGET_VS_NAIVE)])
        else:
            targets.append([f"{kind}: onepass mean wQuantileLoss / SeasonalNaive's", "-", f"<= {TARGET_VS_NAIVE}", "-"])
        if one and gl:
            x = one.med("train_s") / gl.med("train_s")
            targets.append([f"{kind}: onepass training time / GluonTS DeepAR's ({one.med('train_s'):.1f} s / "
                            f"{gl.med('train_s'):.1f} s)", f"{x:.2f}x", "< 1", target_cell(x < 1.0)])
            x = one.med("peak_end_mb") / gl.med("peak_end_mb")
            targets.append([f"{kind}: onepass peak RSS / GluonTS DeepAR's, training and forecasting "
                            f"({one.med('peak_end_mb'):.0f} MB / {gl.med('peak_end_mb'):.0f} MB)", f"{x:.2f}x",
                            "<= 1", target_cell(x <= 1.0)])
        else:
            targets.append([f"{kind}: onepass training time / GluonTS DeepAR's", "-", "< 1", "-"])
            targets.append([f"{kind}: onepass peak RSS / GluonTS DeepAR's", "-", "<= 1", "-"])
        if gl and naive:
            targets.append([f"{kind}: GluonTS DeepAR mean wQuantileLoss / SeasonalNaive's (anchor against anchor)",
                            f"{wql(gl) / wql(naive):.3f}", "(reported)", "-"])
    tables.append(Table("DeepAR: onepass vs targets", ["measure", "measured", "target", "met"], targets,
                        notes=[*(["--quick: 100 generated series and tiny training budgets; the targets are set for the full "
                                  "sizes."] if cfg.quick else []),
                               "'-': onepass DeepAR did not run (not in this tree yet, or failed: see its row)."]))
    return tables


FAMILY = Family(name="deepar", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
