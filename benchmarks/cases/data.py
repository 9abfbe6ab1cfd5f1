"""Data preparation cases: run in a worker like any case, before the measured ones."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks._data import make_blobs_npy, make_csv
from benchmarks._registry import Family, case


@case("data.blobs")
def blobs(p: dict) -> dict:
    t = time.perf_counter()
    out = make_blobs_npy(Path(p["data_dir"]), p["k"], p["n"], p["d"], p["seed"])
    return {**out, "wall_s": time.perf_counter() - t}


@case("data.csv")
def csv_floats(p: dict) -> dict:
    t = time.perf_counter()
    out = make_csv(Path(p["data_dir"]), p["n"], p["d"], p["seed"])
    return {**out, "wall_s": time.perf_counter() - t}


FAMILY = Family(name="data", description="generated inputs", plan=lambda cfg: [], render=lambda cfg, r: [])
