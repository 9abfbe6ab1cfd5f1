"""Run one benchmark case in this (fresh) process and print one JSON line.

    python -m benchmarks.worker CASE --params '{"k": 10, ...}'

Anything the case or its libraries print goes to stderr, so stdout holds exactly the
JSON line: the case's own numbers plus the case name, the threading seen at the end
(threadpoolctl) and the load average at the start. A missing optional library gives
``{"skipped": ...}``, an exception ``{"error": ...}`` and exit status 1. A ``"cores"``
parameter pins the case to that many CPUs (affinity, and BLAS/OpenMP pool sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__.splitlines()[0])
    ap.add_argument("case", help="family.case, e.g. kmeans.sk_mbk_stream")
    ap.add_argument("--params", default="{}", help="JSON object of case parameters")
    args = ap.parse_args(argv)
    params = json.loads(args.params)
    if params.get("cores"):
        # Pin the process to the first N CPUs and size BLAS/OpenMP pools to match, before
        # numpy/sklearn load. Affinity also binds libraries' own thread pools (onepass has one).
        n_cores = int(params["cores"])
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:n_cores]))
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n_cores)

    # Keep fd 1 for the result line alone: libraries printing to stdout land on stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    load = os.getloadavg()[0]
    from benchmarks._measure import threading_info
    from benchmarks._registry import CASES, Skip
    from benchmarks.cases import load_case_module

    status = 0
    try:
        load_case_module(args.case)
        result = CASES[args.case](params)
        result.setdefault("threading", threading_info())
    except Skip as e:
        result = {"skipped": str(e)}
    except Exception as e:  # report, don't crash the run
        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}"[:500]}
        status = 1
    result.update(case=args.case, loadavg_start=load, affinity=sorted(os.sched_getaffinity(0)))
    out.write(json.dumps(result, default=float) + "\n")
    out.flush()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
