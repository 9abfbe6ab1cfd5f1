"""Serving: `onepass serve` vs `mlflow models serve` under a bounded loopback load; batch prediction memory.

Load test. One K-Means model (k=10, d=50, trained by onepass on blobs) is served by
``onepass serve`` and, as the anchor a user would pick today, the same centers in a
scikit-learn ``KMeans`` saved with ``mlflow.sklearn`` and served by
``mlflow models serve --env-manager local`` (MLflow's FastAPI scoring server on uvicorn).
MLflow lives in its own virtual environment, ``benchmarks/data/mlflow-venv``, made on
first use (``pip install mlflow scikit-learn uvloop httptools``: uvloop and httptools
give MLflow's uvicorn the same event loop and HTTP parser as onepass's, so the anchor is
at its best). Each server runs with 1 worker, in its own process; the load comes from a
second process (the case's worker, :mod:`benchmarks._load`): a fixed number of requests
over 4 keep-alive connections, closed loop, after a warm-up. Requests carry 1 or 100
rows; onepass gets CSV (what SageMaker clients send) and JSON, MLflow its JSON
``{"inputs": [[...]]}``. Each case checks that the answer's cluster labels agree with
the model's own.

Batch prediction. ``onepass predict MODEL --data rows.npy --out out.csv`` on 1M and 10M
rows (d=50): wall time and the peak RSS of the process (``getrusage`` of the child).
Memory is flat when the peak does not grow with the rows.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._data import blob_chunks, blob_paths
from benchmarks._registry import Config, Family, Result, Skip, Table, Task, case
from benchmarks.render import fmt_int, fmt_ratio, target_cell

K, D = 10, 50
CONCURRENCY = 4
TARGET_RPS = 2.0  # onepass requests/s / MLflow requests/s on 1-row requests, at least
MLFLOW_PACKAGES = ["mlflow", "scikit-learn", "uvloop", "httptools"]


def _dirs(data_dir: str) -> dict[str, Path]:
    root = Path(data_dir) / "serve"
    return {"root": root, "onepass": root / "model-onepass", "mlflow": root / "model-mlflow",
            "venv": Path(data_dir) / "mlflow-venv"}


# -- preparation ---------------------------------------------------------------------------

_SAVE_MLFLOW = """
import sys
import numpy as np
import mlflow.sklearn
from sklearn.cluster import KMeans
centers = np.load(sys.argv[1]).astype(np.float64)  # what JSON requests give scikit-learn
km = KMeans(n_clusters=len(centers), init=centers, n_init=1, max_iter=1).fit(centers)
np.testing.assert_allclose(km.cluster_centers_, centers, rtol=1e-5, atol=1e-5)
km.cluster_centers_ = centers.copy()  # exactly onepass's centers
mlflow.sklearn.save_model(km, sys.argv[2])
"""


@case("serve.models")
def prepare_models(p: dict) -> dict:
    """The onepass model, and the same centers as an MLflow scikit-learn model (in its venv)."""
    dirs = _dirs(p["data_dir"])
    t = time.perf_counter()
    dirs["root"].mkdir(parents=True, exist_ok=True)
    notes = []
    if not (dirs["onepass"] / "manifest.json").exists():
        from onepass.algorithms import KMeansState
        from onepass.batch import Batch
        from onepass.io import save_model

        state = KMeansState(n_clusters=K, seed=p["seed"])
        for X, _ in blob_chunks(K, 200_000, D, p["seed"]):
            state.update(Batch(X))
        save_model(dirs["onepass"], state.model())
        notes.append("trained the onepass model")
    python = dirs["venv"] / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(dirs["venv"])], check=True)
    if subprocess.run([str(python), "-c", "import mlflow, sklearn, uvloop, httptools"], capture_output=True).returncode:
        proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *MLFLOW_PACKAGES],
                              capture_output=True, text=True)
        if proc.returncode:
            return {"mlflow": f"pip install mlflow failed: {proc.stderr[-300:]}", "wall_s": time.perf_counter() - t}
        notes.append("installed " + " ".join(MLFLOW_PACKAGES) + " in " + str(dirs["venv"]))
    if not (dirs["mlflow"] / "MLmodel").exists():
        import onepass

        centers = dirs["root"] / "centers.npy"
        np.save(centers, onepass.load(dirs["onepass"]).cluster_centers_)
        shutil.rmtree(dirs["mlflow"], ignore_errors=True)
        subprocess.run([str(python), "-c", _SAVE_MLFLOW, str(centers), str(dirs["mlflow"])], check=True)
        notes.append("saved the MLflow model")
    version = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    return {"notes": notes, "mlflow_version": version, "wall_s": time.perf_counter() - t}


# -- servers ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(server: str, dirs: dict[str, Path], port: int, workers: int) -> subprocess.Popen:
    if server == "onepass":
        cmd = [sys.executable, "-m", "onepass.cli", "serve", str(dirs["onepass"]), "--port", str(port),
               "--workers", str(workers), "--log-level", "warning"]
    else:
        mlflow = dirs["venv"] / "bin" / "mlflow"
        if not mlflow.exists():
            raise Skip(f"MLflow is not installed in {dirs['venv']} (the serve.models step failed)")
        cmd = [str(mlflow), "models", "serve", "-m", str(dirs["mlflow"]), "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    env = {**os.environ, "PATH": f"{dirs['venv'] / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    import urllib.request

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server} server exited {proc.returncode}: {proc.stderr.read()[-500:]!r}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"{server} server did not answer /ping in 180 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own session: it and its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _process_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its reaped children (/proc/PID/stat utime+stime+cutime+cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (uvicorn workers are children)."""
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += _process_cpu_s(pid)
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def _body(server: str, fmt: str, X: np.ndarray) -> tuple[bytes, dict[str, str]]:
    if server == "mlflow":
        return json.dumps({"inputs": X.tolist()}).encode(), {"Content-Type": "application/json"}
    if fmt == "csv":
        text = "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in X)
        return text.encode(), {"Content-Type": "text/csv", "Accept": "application/json"}
    body = json.dumps({"instances": [{"features": [round(float(v), 6) for v in row]} for row in X]})
    return body.encode(), {"Content-Type": "application/json", "Accept": "application/json"}


def _labels(server: str, body: bytes) -> list[int]:
    doc = json.loads(body)
    if server == "mlflow":
        return [int(v) for v in doc["predictions"]]
    return [p["closest_cluster"] for p in doc["predictions"]]


@case("serve.load")
def load(p: dict) -> dict:
    import onepass
    from benchmarks._load import http_request, run_load

    dirs = _dirs(p["data_dir"])
    X = next(blob_chunks(K, 1000, D, p["seed"] + 1))[0][: p["rows"]].astype(np.float64).round(6)
    body, headers = _body(p["server"], p["format"], X)
    request = http_request("/invocations", body, headers)
    expected = onepass.load(dirs["onepass"]).predict(X.astype(np.float32)).tolist()
    port = _free_port()
    proc = _start(p["server"], dirs, port, p["workers"])
    try:
        warm = run_load(port, request, p["warmup"], CONCURRENCY)
        if warm.statuses != {200: p["warmup"]}:
            raise RuntimeError(f"warm-up statuses {warm.statuses}: {warm.last_body[:300]!r}")
        if _labels(p["server"], warm.last_body) != expected:
            raise RuntimeError(f"{p['server']} labels differ from the model's: {warm.last_body[:300]!r}")
        cpu0 = _tree_cpu_s(proc.pid)
        client0 = os.times()
        res = run_load(port, request, p["n_requests"], CONCURRENCY)
        client1 = os.times()
        server_cpu = _tree_cpu_s(proc.pid) - cpu0
    finally:
        _stop(proc)
    if res.statuses != {200: p["n_requests"]}:
        raise RuntimeError(f"statuses {res.statuses}")
    return {
        "requests": res.n_requests,
        "wall_s": res.wall_s,
        "requests_per_s": res.requests_per_s,
        "p50_ms": res.percentile_ms(50),
        "p99_ms": res.percentile_ms(99),
        "max_ms": 1000 * max(res.latencies_s),
        "server_cpu_ms_per_request": 1000 * server_cpu / res.n_requests,
        "client_cpu_s": (client1.user - client0.user) + (client1.system - client0.system),
        "body_bytes": len(body),
    }


# -- batch prediction memory ------------------------------------------------------------------


@case("serve.batch")
def batch(p: dict) -> dict:
    dirs = _dirs(p["data_dir"])
    data = blob_paths(Path(p["data_dir"]), K, p["n"], D, p["seed"])[0]
    out = dirs["root"] / f"predictions-{p['n']}.csv"
    cmd = [sys.executable, "-m", "onepass.cli", "predict", str(dirs["onepass"]), "--data", str(data), "--out", str(out)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"onepass predict exited {proc.returncode}: {proc.stderr[-500:]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the only child: onepass predict
    with open(out, "rb") as f:
        n_lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
    out.unlink()
    if n_lines != p["n"] + 1:
        raise RuntimeError(f"{out} has {n_lines} lines for {p['n']} rows")
    return {"rows": p["n"], "wall_s": wall, "rows_per_s": p["n"] / wall, "peak_rss_mb": peak_mb,
            "input_mb": data.stat().st_size / 1e6}


# -- plan and tables ----------------------------------------------------------------------------


def _batch_sizes(cfg: Config) -> list[int]:
    return [100_000, 1_000_000] if cfg.quick else [1_000_000, 10_000_000]


def prepare(cfg: Config) -> list[Task]:
    base = {"data_dir": str(cfg.data_dir), "seed": cfg.seed}
    return [Task("serve.models", base, timeout_s=1800),
            *(Task("data.blobs", {**base, "k": K, "n": n, "d": D}, timeout_s=1800) for n in _batch_sizes(cfg))]


SERVERS = [("onepass", "csv"), ("onepass", "json"), ("mlflow", "json")]


def _load_tasks(cfg: Config) -> list[Task]:
    tasks = []
    for rows in (1, 100):
        n = (2000 if rows == 1 else 500) if cfg.quick else (20_000 if rows == 1 else 3000)
        for server, fmt in SERVERS:
            params = {"data_dir": str(cfg.data_dir), "seed": cfg.seed, "server": server, "format": fmt,
                      "rows": rows, "workers": 1, "n_requests": n, "warmup": max(200, n // 10)}
            tasks.append(Task("serve.load", params, f"{server} ({fmt}), {rows} row(s)/request", timeout_s=900))
    return tasks


def plan(cfg: Config) -> list[Task]:
    batch_tasks = [Task("serve.batch", {"data_dir": str(cfg.data_dir), "seed": cfg.seed, "n": n},
                        f"onepass predict, {fmt_int(n)} rows", repeat=1, timeout_s=1800) for n in _batch_sizes(cfg)]
    return _load_tasks(cfg) + batch_tasks


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    rows, by = [], {}
    for t in _load_tasks(cfg):
        r = results.get(t.key) or Result(t)
        p = t.params
        by[(p["server"], p["format"], p["rows"])] = r
        if r.problem:
            rows.append([t.label, r.problem])
            continue
        rows.append([t.label, fmt_int(p["n_requests"]), f"{r.med('requests_per_s'):,.0f}", f"{r.med('p50_ms'):.2f}",
                     f"{r.med('p99_ms'):.2f}", f"{r.med('server_cpu_ms_per_request'):.3f}",
                     f"{r.med('body_bytes'):,.0f}"])
    summary = []
    for rows_n in (1, 100):
        ml = by.get(("mlflow", "json", rows_n))
        for fmt in ("csv", "json"):
            op = by.get(("onepass", fmt, rows_n))
            if not op or not ml or op.problem or ml.problem:
                summary.append([f"onepass ({fmt}) / MLflow, {rows_n} row(s)", "n/a", "n/a", ""])
                continue
            ratio = op.med("requests_per_s") / ml.med("requests_per_s")
            p99 = op.med("p99_ms") / ml.med("p99_ms")
            ok = ratio >= TARGET_RPS and p99 < 1 if rows_n == 1 else None
            summary.append([f"onepass ({fmt}) / MLflow, {rows_n} row(s)", fmt_ratio(ratio), fmt_ratio(p99),
                            "" if ok is None else target_cell(ok)])
    version = next((r.first("mlflow_version") for r in results.values() if r.first("mlflow_version")), None)
    brows, peaks = [], []
    for t in plan(cfg):
        if t.case != "serve.batch":
            continue
        r = results.get(t.key) or Result(t)
        if r.problem:
            brows.append([t.label, r.problem])
            continue
        peaks.append(r.med("peak_rss_mb"))
        brows.append([t.label, f"{r.med('input_mb'):,.0f}", f"{r.med('wall_s'):.1f}", f"{r.med('rows_per_s'):,.0f}",
                      f"{r.med('peak_rss_mb'):,.0f}"])
    notes = [f"Peak RSS from {fmt_int(_batch_sizes(cfg)[0])} to {fmt_int(_batch_sizes(cfg)[-1])} rows: "
             + " -> ".join(f"{p:,.0f} MB" for p in peaks)] if len(peaks) == len(_batch_sizes(cfg)) else []
    return [
        Table(
            f"Serving K-Means (k={K}, d={D}) on loopback, 1 worker, {CONCURRENCY} keep-alive connections",
            ["server (request body), rows per request", "requests", "requests/s", "p50 ms", "p99 ms",
             "server CPU ms/request", "body bytes"],
            rows,
            notes=[
                "onepass: `onepass serve MODEL --workers 1`; MLflow"
                + (f" {version}" if version else "")
                + ": `mlflow models serve -m MODEL --env-manager local -w 1` (FastAPI on uvicorn, with uvloop and httptools "
                "installed), the same centers in a scikit-learn KMeans saved by mlflow.sklearn.",
                "The load generator (benchmarks/_load.py, asyncio) runs in another process on the same 2 cores; latency is "
                "from writing the request to reading the whole answer. Server CPU: CPU time of the server's processes / requests.",
                "Answers differ in size: onepass returns closest_cluster and distance_to_cluster per row (SageMaker's shape), "
                "MLflow's scikit-learn flavour the label alone.",
            ],
        ),
        Table(
            "Serving: onepass / MLflow",
            ["comparison", "requests/s ratio", "p99 ratio (lower is better)", f"target: >= {TARGET_RPS:.0f}x requests/s and lower p99 on 1 row"],
            summary,
        ),
        Table(
            f"Batch prediction memory: onepass predict, K-Means k={K}, d={D}, float32 .npy in, CSV out",
            ["case", "input MB", "wall s", "rows/s", "peak RSS MB"],
            brows,
            notes=notes + ["Peak RSS: getrusage(RUSAGE_CHILDREN).ru_maxrss of the `onepass predict` process (the worker's only child)."],
        ),
    ]


FAMILY = Family(name="serve", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
