"""Command start-up: CPU seconds of onepass's commands against the interpreter and imports.

Each case runs one command in fresh processes (7 times; the median and the range are
shown) and measures the children's user + system CPU time (``getrusage``), which a busy
machine moves far less than wall time. The anchors are what any Python tool of this kind
pays before doing anything: the bare interpreter, ``import numpy``, and scikit-learn's
``import sklearn.cluster`` (what a script calling ``MiniBatchKMeans`` starts with).
Target (issue 21): ``onepass --help`` and ``onepass inspect MODEL`` under 0.3 s of CPU.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import target_cell

TARGET_CPU_S = 0.3
TIMES = 7
CLI = [sys.executable, "-m", "onepass.cli"]

COMMANDS = {
    "startup.python": ("python -c pass (the interpreter alone)", [sys.executable, "-c", "pass"]),
    "startup.numpy": ("python -c 'import numpy'", [sys.executable, "-c", "import numpy"]),
    "startup.sklearn": ("python -c 'import sklearn.cluster' (scikit-learn's MiniBatchKMeans)",
                        [sys.executable, "-c", "import sklearn.cluster"]),
    "startup.help": ("onepass --help", [*CLI, "--help"]),
    "startup.train_help": ("onepass train kmeans --help", [*CLI, "train", "kmeans", "--help"]),
    "startup.inspect": ("onepass inspect MODEL (a K-Means model)", [*CLI, "inspect", "{model}"]),
}
TARGETED = ("startup.help", "startup.inspect")


def _cpu_seconds(cmd: list[str], cwd: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _measure(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        if "{model}" in " ".join(COMMANDS[name][1]):
            import numpy as np

            from onepass.training import train

            X = np.random.default_rng(0).normal(size=(5_000, 10)).astype(np.float32)
            np.save(Path(tmp) / "x.npy", X)
            train("kmeans", Path(tmp) / "x.npy", params={"n_clusters": 10}, seed=0, out=model)
        cmd = [a.replace("{model}", str(model)) for a in COMMANDS[name][1]]
        _cpu_seconds(cmd, tmp)  # untimed: files into the page cache, .pyc written
        times = [_cpu_seconds(cmd, tmp) for _ in range(TIMES)]  # cwd a temporary folder: the installed onepass
    return {"cpu_s": median(times), "cpu_min": min(times), "cpu_max": max(times)}


for _name in COMMANDS:
    case(_name)(lambda p, _name=_name: _measure(_name))


def plan(cfg: Config) -> list[Task]:
    return [Task(name, {}, label, repeat=1) for name, (label, _) in COMMANDS.items()]


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    rows, summary = [], []
    for t in plan(cfg):
        r = results.get(t.key) or Result(t)
        if r.problem:
            rows.append([t.label, r.problem, ""])
            continue
        rows.append([t.label, f"{r.med('cpu_s'):.3f}", f"{r.med('cpu_min'):.3f}-{r.med('cpu_max'):.3f}"])
        if t.case in TARGETED:
            cpu = r.med("cpu_s")
            summary.append([f"{t.label}: CPU s", f"{cpu:.3f}", f"<= {TARGET_CPU_S}", target_cell(cpu <= TARGET_CPU_S)])
    return [
        Table(f"Start-up: CPU seconds of a command ({TIMES} fresh processes each, median and range)",
              ["command", "CPU s", "range"], rows,
              ["user + system time of the child (getrusage), not wall time: a busy machine moves it little."]),
        Table("Start-up: onepass vs targets", ["measure", "measured", "target", "met"], summary),
    ]


FAMILY = Family(name="startup", description=__doc__.splitlines()[0], plan=plan, render=render)
