"""Machine facts and a BLAS probe, recorded at the start and end of every run.

The second vCPU of this VM is not reliably available (anchor report, section 6): a
2-thread float32 matmul has measured anywhere from 6.7 to 178 GFLOP/s. The probe shows
which kind of run this was, so throughput ratios can be read with that in mind.
"""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata

import numpy as np

from benchmarks._measure import threading_info
from benchmarks._registry import Family, case


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _gflops(n_threads: int, seconds: float = 0.7) -> float:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 50), dtype=np.float32)
    b = rng.standard_normal((50, 100), dtype=np.float32)
    with threadpool_limits(limits=n_threads, user_api="blas"):
        a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            reps += 1
        dt = time.perf_counter() - t0
    return 2.0 * 4096 * 50 * 100 * reps / dt / 1e9


@case("machine.facts")
def facts(p: dict) -> dict:
    import sklearn  # noqa: F401  (loads its OpenMP runtime, so threadpoolctl sees it)

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    cpu = {
        k: fields[k].strip()
        for k in ("Model name", "CPU family", "Model", "Hypervisor vendor", "L2 cache", "L3 cache")
        if k in fields
    }
    import os

    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "versions": {
            d: _version(d) for d in ("numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "threadpoolctl", "onepass")
        },
        "mem_total_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "env": {
            k: os.environ.get(k)
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        },
        "threading": threading_info(),
    }


@case("machine.matmul")
def matmul(p: dict) -> dict:
    """float32 (4096x50)@(50x100), the k-means distance shape, at 1 and 2 BLAS threads."""
    return {"gflops_1t": _gflops(1), "gflops_2t": _gflops(2), "threading": threading_info()}


FAMILY = Family(name="machine", description="machine facts", plan=lambda cfg: [], render=lambda cfg, r: [])
