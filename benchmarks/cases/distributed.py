"""Distributed training on Ray: 1 worker vs 2 workers, and Ray's cost against the plain loop.

Each algorithm trains on one float32 ``.npy`` file (compute-bound settings: K-Means k=200
on d=50 blobs, PCA exact and sketch at d=300, Linear Learner with 32 models at d=100, the Neural Topic
Model with 20 topics on word counts of 500 words, its networks averaged; DeepAR on the
deepar family's 2,000 generated hourly series, JSON lines cut at line starts),
read by the workers themselves in row-range shards. The files are large enough that one
worker trains for about 15 s or more, so the fixed costs of a job (starting the worker
processes, the last merge) weigh what they would on a real job, not most of it. Cases,
each in a fresh process:

- ``plain``: ``onepass.train`` in one process, as without ``--workers``: once with its
  default threading (K-Means splits each batch over 2 threads), once pinned to 1 core with
  the row blocks run inline, which is exactly the loop one worker runs;
- ``ray``: ``ray.init(num_cpus=2)`` on loopback (its start-up is timed apart, not in the
  rate), then ``train_distributed(..., workers=1 or 2)``. The rate includes starting the
  worker actors, planning shards, shipping and merging every piece's state.

``others`` (contention): CPU time the rest of the machine used during the case / wall,
where "the case" is this process, the Ray daemons it started and its workers' pieces.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks._measure import Meter, system_busy_s, warm_page_cache, write_npy_chunked
from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import fmt_int, fmt_rate, target_cell

D_KMEANS, K = 50, 200
D_PCA, RANK = 300, 20
D_LINEAR = 100
D_WORDS, TOPICS, DOC_WORDS = 500, 20, 60  # documents of LDA's generative model
CHUNK = 100_000
TARGET_SPEEDUP = 1.6
ALGOS = {
    "kmeans": ("kmeans", {"n_clusters": K}, "K-Means k=200, d=50"),
    "pca-exact": ("pca", {"n_components": 10, "mode": "exact"}, "PCA exact, d=300"),
    "pca-sketch": ("pca", {"n_components": 10, "mode": "sketch"}, "PCA sketch, d=300"),
    "linear": ("linear-learner", {"num_models": 32}, "Linear Learner, 32 models, d=100"),
    "ntm": ("ntm", {"num_topics": 20}, "Neural Topic Model, 20 topics, 500 words"),
    # one window per prediction length (not the default 4): a run of minutes, not of many
    "deepar": ("deepar", {"prediction_length": 24, "context_length": 72, "time_freq": "H",
                          "windows_per_prediction_length": 1.0}, "DeepAR, hourly series of the deepar family"),
}
DATA = {"kmeans": "kmeans", "pca-exact": "pca", "pca-sketch": "pca", "linear": "linear", "ntm": "counts",
        "deepar": "series"}
DIMS = {"kmeans": D_KMEANS, "pca": D_PCA, "linear": D_LINEAR, "counts": D_WORDS}


def _rows(cfg: Config, algo: str) -> int:
    kind = DATA.get(algo, algo)
    # full sizes: ~15-20 s for one worker on one core of the 2-vCPU bench VM (3-5 GB each)
    if kind == "kmeans":
        return 600_000 if cfg.quick else 16_000_000
    if kind == "linear":
        return 100_000 if cfg.quick else 12_000_000
    if kind == "counts":
        return 30_000 if cfg.quick else 600_000
    if kind == "series":  # series (records), the deepar family's generated ones
        return 100 if cfg.quick else 2000
    return 60_000 if cfg.quick else 3_200_000


def _series_params(data_dir: Path, n: int, seed: int) -> dict:
    return {"data_dir": str(data_dir), "kind": "generated", "seed": seed, "prediction_length": 24, "n_series": n}


def data_path(data_dir: Path, kind: str, n: int, seed: int) -> Path:
    if kind == "series":  # the deepar family's training file (SageMaker's JSON lines)
        from benchmarks.cases import deepar

        return deepar.files(_series_params(data_dir, n, seed))["train"]
    name = {"kmeans": "blobs", "pca": "lowrank", "linear": "logistic", "counts": "lda"}[kind]
    return data_dir / f"dist_{name}_d{DIMS[kind]}_n{n}_s{seed}.npy"


def _setup(p: dict) -> tuple[str, dict, Path, dict]:
    """(algorithm, params, data file, train kwargs) of a case, the file in the page cache;
    Skip when the algorithm is not in this tree."""
    from benchmarks._registry import Skip
    from onepass.state import ALGORITHMS, get_algorithm

    algo, params, _ = ALGOS[p["algo"]]
    get_algorithm("kmeans")  # fills the registry
    if algo not in ALGORITHMS:
        raise Skip(f"{algo} is not in this tree")
    path = data_path(Path(p["data_dir"]), DATA[p["algo"]], p["n"], p["seed"])
    warm_page_cache(path)
    return algo, params, path, {"label_column": D_LINEAR} if DATA[p["algo"]] == "linear" else {}


@case("distributed.data")
def make_data(p: dict) -> dict:
    if p["algo"] == "series":
        from benchmarks.cases import deepar

        return deepar.make_data(_series_params(Path(p["data_dir"]), p["n"], p["seed"]))
    path = data_path(Path(p["data_dir"]), p["algo"], p["n"], p["seed"])
    if path.exists():
        return {"path": str(path), "generated": False}
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    d = DIMS[p["algo"]]
    if p["algo"] == "kmeans":
        centers = np.random.default_rng([p["seed"], 1]).normal(0, 4, (K, D_KMEANS)).astype(np.float32)
    elif p["algo"] == "pca":
        basis = np.linalg.qr(np.random.default_rng([p["seed"], 2]).standard_normal((D_PCA, RANK)))[0].T
        scales = (10.0 * 0.85 ** np.arange(RANK))[:, None]
    elif p["algo"] == "counts":
        beta = np.random.default_rng([p["seed"], 5]).dirichlet(np.full(D_WORDS, 0.05), size=TOPICS)
    else:
        truth = np.random.default_rng([p["seed"], 4]).standard_normal(D_LINEAR) / np.sqrt(D_LINEAR) * 3

    def chunks():
        for i, start in enumerate(range(0, p["n"], CHUNK)):
            rng = np.random.default_rng([p["seed"], 3, i])
            m = min(CHUNK, p["n"] - start)
            if p["algo"] == "kmeans":
                yield centers[rng.integers(0, K, m)] + rng.standard_normal((m, d), dtype=np.float32)
            elif p["algo"] == "pca":
                yield (rng.standard_normal((m, RANK)) @ (basis * scales) + rng.standard_normal((m, d)) + 3.0)
            elif p["algo"] == "counts":  # each document: a Dirichlet mix of the topics, DOC_WORDS words
                probs = rng.dirichlet(np.full(TOPICS, 0.1), size=m) @ beta
                yield np.vstack([rng.multinomial(DOC_WORDS, q) for q in probs])
            else:  # features, then a 0/1 label drawn from a logistic model
                X = rng.standard_normal((m, d))
                y = rng.random(m) < 1 / (1 + np.exp(-X @ truth))
                yield np.column_stack([X, y])

    write_npy_chunked(path, (p["n"], d + (p["algo"] == "linear")), np.float32, chunks())
    return {"path": str(path), "generated": True, "bytes": path.stat().st_size, "wall_s": time.perf_counter() - t0}


def _descendant_cpu() -> dict[int, float]:
    """CPU seconds of each of this process's descendants (the Ray daemons and workers), by pid."""
    import psutil

    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            out[child.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _ray_cpu_s(before: dict[int, float], skip: set[int]) -> float:
    """CPU the Ray daemons used since ``before``, leaving out the workers in ``skip``
    (the job reports their pieces' CPU itself; a killed worker may linger a moment)."""
    after = _descendant_cpu()
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items() if pid not in skip)


@case("distributed.plain")
def plain(p: dict) -> dict:
    import onepass
    from onepass._parallel import run_blocks_inline

    algo, params, path, kwargs = _setup(p)
    if p.get("inline"):
        run_blocks_inline(True)
    with Meter() as m:
        result = onepass.train(algo, str(path), params=params, seed=p["seed"], **kwargs)
    return {**m.as_dict(), "rows": result.n_rows_seen, "rows_per_s": result.n_rows_seen / m.wall_s}


@case("distributed.ray")
def on_ray(p: dict) -> dict:
    import ray

    from onepass.distributed import train_distributed

    algo, params, path, kwargs = _setup(p)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    init_s = time.perf_counter() - t0
    try:
        ray_cpu0, busy0 = _descendant_cpu(), system_busy_s()
        with Meter() as m:
            result = train_distributed(algo, str(path), workers=p["workers"], params=params, seed=p["seed"],
                                       strategy=p.get("strategy", "merge"), **kwargs)
        ray_cpu = _ray_cpu_s(ray_cpu0, {int(pid) for pid in result.metrics["worker_rows"]})
        busy = system_busy_s() - busy0
    finally:
        ray.shutdown()
    ours = m.cpu_s + ray_cpu + result.metrics["worker_cpu_s"]
    out = m.as_dict()
    ready = result.metrics["workers_ready_s"] or 0.0
    out.update(rows=result.n_rows_seen, rows_per_s=result.n_rows_seen / m.wall_s, ray_init_s=init_s,
               workers_ready_s=ready, rows_per_s_started=result.n_rows_seen / max(1e-9, m.wall_s - ready),
               shards=result.metrics["shards"], pieces=result.metrics["pieces"],
               worker_cpu_s=result.metrics["worker_cpu_s"], worker_idle_s=result.metrics.get("worker_idle_s"), driver_cpu_s=m.cpu_s, ray_daemon_cpu_s=ray_cpu,
               cpu_s=ours, other_cpu_s=max(0.0, busy - ours), cpus=os.cpu_count())
    return out


def prepare(cfg: Config) -> list[Task]:
    tasks, seen = [], set()
    for name in ALGOS:
        kind = DATA[name]
        key = (kind, _rows(cfg, name))
        if key in seen:
            continue
        seen.add(key)
        tasks.append(Task("distributed.data", {"data_dir": str(cfg.data_dir), "algo": kind, "n": key[1],
                                               "seed": cfg.seed}))
    return tasks


def _base(cfg: Config, name: str) -> dict:
    return {"data_dir": str(cfg.data_dir), "algo": name, "n": _rows(cfg, name), "seed": cfg.seed}


def plan(cfg: Config) -> list[Task]:
    tasks = []
    for name, (_, _, title) in ALGOS.items():
        base = _base(cfg, name)
        tasks += [
            Task("distributed.plain", base, f"{title}: plain loop, default threading"),
            Task("distributed.plain", {**base, "inline": True, "cores": 1}, f"{title}: plain loop, 1 core"),
            Task("distributed.ray", {**base, "workers": 1}, f"{title}: Ray, 1 worker"),
            Task("distributed.ray", {**base, "workers": 2}, f"{title}: Ray, 2 workers"),
        ]
        if name == "linear":
            tasks.append(Task("distributed.ray", {**base, "workers": 2, "strategy": "parameter-server"},
                              f"{title}: Ray, 2 workers, parameter server"))
    return tasks


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    rows, targets = [], []
    for name, (_, _, title) in ALGOS.items():
        mine = [t for t in plan(cfg) if t.params["algo"] == name]
        got = {t.label: results.get(t.key) or Result(t) for t in mine}
        for t in mine:
            r = got[t.label]
            if r.problem:
                rows.append([t.label, r.problem])
                continue
            rates = r.values("rows_per_s")
            spread = f" ({min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else ""
            own = [x["cpu_s"] / x["wall_s"] for x in r.ok_runs]
            busy = [x["worker_cpu_s"] / x["wall_s"] for x in r.ok_runs if "worker_cpu_s" in x]
            other = [x["other_cpu_s"] / x["wall_s"] for x in r.ok_runs]
            init, ready = r.med("ray_init_s"), r.med("workers_ready_s")
            started = r.med("rows_per_s_started")
            idle = r.med("worker_idle_s")
            rows.append([t.label, fmt_int(r.first("rows")), fmt_rate(r.med("rows_per_s")) + spread,
                         "" if started is None else fmt_rate(started),
                         f"{r.med('wall_s'):.2f}", "" if init is None else f"{init:.1f}",
                         "" if ready is None else f"{ready:.1f}",
                         "" if r.first("pieces") is None else f"{r.first('shards')}/{r.first('pieces')}",
                         f"{np.median(own):.2f}", f"{np.median(busy):.2f}" if busy else "",
                         "" if idle is None else f"{idle:.2f}",
                         f"{np.median(other):.2f}", str(len(r.ok_runs))])
        one, two = got[mine[2].label], got[mine[3].label]
        plain1, plain_default = got[mine[1].label], got[mine[0].label]
        if not one.problem and not two.problem:
            speedup = two.med("rows_per_s") / one.med("rows_per_s")
            targets.append([f"{title}: 2 workers / 1 worker rows/s", f"{speedup:.2f}x", f">= {TARGET_SPEEDUP}x",
                            target_cell(speedup >= TARGET_SPEEDUP)])
            per_cpu = [np.median([x["rows"] / x["worker_cpu_s"] for x in r.ok_runs]) for r in (one, two)]
            targets.append([f"{title}: rows per worker CPU-second, 2 workers / 1 worker (what contention does not "
                            "change: 1.00 means the second worker costs nothing extra per row)",
                            f"{per_cpu[1] / per_cpu[0]:.2f}x", "(info)", ""])
            steady = two.med("rows_per_s_started") / one.med("rows_per_s_started")
            targets.append([f"{title}: 2 workers / 1 worker rows/s once workers started", f"{steady:.2f}x", "(info)",
                            ""])
        if not one.problem and not plain1.problem:
            overhead = one.med("rows_per_s") / plain1.med("rows_per_s")
            targets.append([f"{title}: Ray 1 worker / plain loop on 1 core, rows/s", f"{overhead:.2f}x", "(info)", ""])
        if not two.problem and not plain_default.problem:
            gain = two.med("rows_per_s") / plain_default.med("rows_per_s")
            targets.append([f"{title}: Ray 2 workers / plain loop, default threading", f"{gain:.2f}x", "(info)", ""])
    return [
        Table("Distributed training on Ray (local cluster, 2 CPUs)",
              ["case", "rows", "rows/s median (min-max)", "rows/s once workers started", "wall s", "ray.init s",
               "workers start s", "shards/pieces", "cpu/wall", "workers' cpu/wall", "workers' idle s", "others", "runs"],
              rows,
              notes=["rows/s counts the whole job: starting the workers, planning, reading, training, shipping and "
                     "merging every piece; ray.init is apart. 'Once workers started' leaves out the workers' start-up (a new process each, importing onepass), paid once per job. cpu/wall for Ray cases: driver + Ray daemons + "
                     "workers' pieces; workers' cpu/wall: the pieces alone (2.00 would be two workers busy all the time). "
                     "workers' idle s: summed over workers, the time between the end of a worker's piece and the "
                     "start of its next (result to the driver, next piece back)."]),
        Table("Distributed: onepass vs targets", ["measure", "measured", "target", "met"], targets),
    ]


FAMILY = Family(name="distributed", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
