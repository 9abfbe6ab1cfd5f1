"""Tuning by search: successive halving over trials that pause and resume.

When a setting changes how training runs (a learning rate, the kept centers, the batch
size, a half-life), each candidate must be trained. Successive halving (Jamieson &
Talwalkar 2016) keeps that cheap: every trial trains on a first slice of rows, is
scored on the validation source, the weaker ``1 - 1/eta`` of the trials stop, and the
survivors **resume from their checkpoints** (their row counters go on) for ``eta``
times more rows, until one is left. Optuna draws the trials' settings (TPE or random);
with several brackets, each later bracket's draws learn from the earlier ones' scores.

Everything is kept in a work directory: ``search.json`` (the settings of every trial
and the rows schedule, written once), ``trials/NNNN/`` (each trial's checkpoints and
one ``rung-R.json`` per round it finished, written atomically). A search killed at any
moment and started again with the same work directory redoes nothing that finished:
finished rounds are read back, an interrupted trial resumes from its last checkpoint.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from onepass.errors import InvalidParameterError
from onepass.tune._leaderboard import Leaderboard
from onepass.tune._space import Dimension

__all__ = ["tune_search"]

JOURNAL = "search.json"
TRAIN_SETTINGS = ("batch_size",)  # tunable settings of the training loop, not of the state


@dataclass(frozen=True)
class _Job:
    trial: int
    rung: int
    rows: int
    params: dict[str, Any]
    config: dict[str, Any]


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1, default=_jsonable)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _run_job(job: _Job) -> dict[str, Any]:
    """Train one trial up to ``job.rows`` rows (resuming its checkpoint), score it on the
    validation source, record the round. Runs in a worker process."""
    from onepass.training import train
    from onepass.tune._from_state import score_models

    cfg = job.config
    trial_dir = Path(cfg["workdir"]) / "trials" / f"{job.trial:04d}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    done = trial_dir / f"rung-{job.rung}.json"
    # One process trains a trial at a time, even when a killed search left a worker
    # running and a new one started: the second waits for the first to finish.
    with open(trial_dir / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return json.loads(done.read_text())
        from onepass.io import latest_checkpoint
        from onepass.io._artifact import read_manifest

        # Only the manifest's row count: train() loads (and verifies) the state itself.
        last = latest_checkpoint(trial_dir / "checkpoints") if (trial_dir / "checkpoints").exists() else None
        resumed_from = int(read_manifest(last).get("rows_seen", 0)) if last else 0
        params = dict(job.params)
        batch_size = int(params.pop("batch_size", cfg["batch_size"]))
        result = train(
            cfg["algorithm"], cfg["data"], params={**cfg["fixed"], **params}, batch_size=batch_size,
            checkpoint_dir=trial_dir / "checkpoints", resume=True, max_rows=job.rows,
            checkpoint_every_rows=max(batch_size, job.rows // 4), seed=cfg["seed"] + job.trial,
            finalize=cfg["finalize"] or None, epochs=cfg["epochs"], **cfg["source"],
        )
        scores = score_models([result.model], cfg["validation"], seed=cfg["seed"], **cfg["validation_source"])[0]
        record = {"trial": job.trial, "rung": job.rung, "rows": result.n_rows_seen, "resumed_from_rows": resumed_from,
                  "exhausted": not result.paused, "scores": scores}
        _write_json(done, record)
        return record


def _run_job_in_process(job: _Job) -> dict[str, Any]:
    """``_run_job`` in a fresh interpreter (``python -m onepass.tune._search JOB``): a
    trial's crash or memory stays its own, and no caller needs a ``__main__`` guard."""
    trial_dir = Path(job.config["workdir"]) / "trials" / f"{job.trial:04d}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    spec = trial_dir / f"job-{job.rung}.json"
    _write_json(spec, asdict(job))
    proc = subprocess.run([sys.executable, "-m", "onepass.tune._search", str(spec)],
                          capture_output=True, text=True, check=False)
    done = trial_dir / f"rung-{job.rung}.json"
    if proc.returncode != 0 or not done.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise InvalidParameterError(f"trial {job.trial} failed in round {job.rung} (exit {proc.returncode}):\n{tail}")
    return json.loads(done.read_text())


def _distributions(dims: list[Dimension]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for d in dims:
        if d.integer and d.low is not None:
            out[d.name] = IntDistribution(int(d.low), int(d.high))
        elif d.values is not None:
            out[d.name] = CategoricalDistribution(list(d.values))
        else:
            out[d.name] = FloatDistribution(d.low, d.high, log=d.log)
    return out


def _schedule(budget_rows: int, n_trials: int, eta: int, brackets: int) -> list[int]:
    """Cumulative rows per round for one bracket: ``r0, r0*eta, ...`` until one trial
    is left, with ``r0`` chosen so that the bracket reads ``budget_rows / brackets``."""
    rounds = max(1, math.ceil(math.log(n_trials, eta)) + 1) if n_trials > 1 else 1
    # Rows read: n*r0 in round 0, then survivors_r * (rows_r - rows_{r-1}).
    per_r0, survivors = n_trials, n_trials
    for r in range(1, rounds):
        survivors = max(1, math.ceil(survivors / eta))
        per_r0 += survivors * (eta**r - eta ** (r - 1))
    r0 = max(1, (budget_rows // brackets) // per_r0)
    return [r0 * eta**r for r in range(rounds)]


def tune_search(
    algorithm: str,
    data: Any,
    validation: Any,
    params: list[str | Dimension],
    *,
    budget_rows: int,
    workdir: str | os.PathLike[str],
    n_trials: int | None = None,
    eta: int = 2,
    brackets: int = 1,
    sampler: str = "tpe",
    jobs: int | None = None,
    metric: str | None = None,
    fixed: dict[str, Any] | None = None,
    finalize: dict[str, Any] | None = None,
    batch_size: int = 8192,
    epochs: int = 1,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    source: dict[str, Any] | None = None,
    validation_source: dict[str, Any] | None = None,
) -> Leaderboard:
    """Successive-halving search over settings that change training; see the module doc."""
    from onepass.state import get_algorithm
    from onepass.training import make_state, state_parameters
    from onepass.tune._from_state import parse_params
    from onepass.tune._scorers import scorer_for

    algo = get_algorithm(algorithm)
    dims = parse_params(params)
    tunable = [*state_parameters(algo.state), *TRAIN_SETTINGS]
    for d in dims:
        if d.name not in tunable:
            raise InvalidParameterError(f"--param {d.name}: not a setting of {algorithm} training; tunable: {', '.join(tunable)}")
    if n_trials is None:  # a grid: every point once; otherwise 8 a bracket
        n_trials = math.prod(len(d.values) for d in dims) if sampler == "grid" and all(d.is_grid for d in dims) else 8
    for name, value in (("budget_rows", budget_rows), ("n_trials", n_trials), ("eta", eta), ("brackets", brackets)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "eta" else 1):
            raise InvalidParameterError(f"{name}={value!r} must be an integer >= {2 if name == 'eta' else 1}")
    if sampler not in ("tpe", "random", "grid"):
        raise InvalidParameterError(f"sampler={sampler!r}: choose tpe, random or grid")
    if sampler == "grid":
        continuous = [d.name for d in dims if not d.is_grid]
        if continuous:
            raise InvalidParameterError(
                f"sampler='grid' needs every range as a grid (a step, a count or a list); continuous: {', '.join(continuous)}"
            )
    scorer_cls = scorer_for(algo.model.kind)
    metric = metric or scorer_cls.default_for(make_state(algorithm, fixed or {}, seed))
    if metric not in scorer_cls.metrics:
        raise InvalidParameterError(f"metric={metric!r}: {algorithm} offers {', '.join(scorer_cls.metrics)}")
    direction = scorer_cls.metrics[metric]
    # Each end of each range must make a valid state: bad settings fail before training.
    for d in dims:
        ends = d.values if d.values is not None else (d.low, d.high)
        for value in ends:
            if d.name in TRAIN_SETTINGS:
                if not isinstance(value, int) or value < 1:
                    raise InvalidParameterError(f"--param {d.name}={value!r}: must be an integer >= 1")
                continue
            try:
                make_state(algorithm, {**(fixed or {}), d.name: value}, seed)
            except InvalidParameterError as exc:
                raise InvalidParameterError(f"--param {d.name}: {exc}") from None

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "algorithm": algorithm, "data": [str(u) for u in (data if isinstance(data, (list, tuple)) else [data])],
        "validation": str(validation), "params": [d.describe() for d in dims], "metric": metric,
        "budget_rows": budget_rows, "n_trials": n_trials, "eta": eta, "brackets": brackets, "sampler": sampler,
        "fixed": fixed or {}, "batch_size": batch_size, "seed": seed,
    }
    journal_path = workdir / JOURNAL
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else None
    if journal is not None and journal["spec"] != spec:
        changed = [k for k in spec if journal["spec"].get(k) != spec[k]]
        raise InvalidParameterError(
            f"{workdir} holds another search (it differs in: {', '.join(changed)}); use a new --workdir, or the same settings to resume it"
        )
    if journal is None:
        journal = {"spec": spec, "schedule": _schedule(budget_rows, n_trials, eta, brackets), "trials": []}
        _write_json(journal_path, journal)

    config = {
        "workdir": str(workdir), "algorithm": algorithm,
        "data": spec["data"] if len(spec["data"]) > 1 else spec["data"][0],
        "validation": str(validation), "fixed": fixed or {}, "finalize": finalize or {}, "batch_size": batch_size,
        "epochs": epochs, "seed": seed, "source": source or {}, "validation_source": validation_source or {},
    }
    schedule = journal["schedule"]
    sign = 1.0 if direction == "min" else -1.0
    results: dict[tuple[int, int], dict[str, Any]] = {}
    jobs = jobs or max(1, min(os.cpu_count() or 1, n_trials))

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each job runs in a process of its own
        for bracket in range(brackets):
            trials = _bracket_trials(journal, journal_path, bracket, dims, n_trials, sampler, seed, results, metric, direction)
            alive = [t["number"] for t in trials]
            for rung, rows in enumerate(schedule):
                todo = [_Job(n, rung, rows, journal["trials"][n]["params"], config) for n in alive]
                for record in pool.map(_run_job_in_process, todo):
                    results[(record["trial"], rung)] = record
                if len(alive) == 1:
                    break
                keep = max(1, math.ceil(len(alive) / eta))
                alive = sorted(alive, key=lambda n: (_score(results[(n, rung)], metric, sign), n))[:keep]
                if all(results[(n, rung)]["exhausted"] for n in alive):
                    break  # the data ran out: more rows would change nothing
    board = _leaderboard(journal, results, dims, metric, direction, sign)
    if out is not None or plot is not None:
        _finish(board, workdir, algorithm, config, out, plot)
    return board


def _score(record: dict[str, Any], metric: str, sign: float) -> float:
    value = record["scores"].get(metric)
    return math.inf if value is None or not math.isfinite(value) else sign * value


def _bracket_trials(journal: dict[str, Any], journal_path: Path, bracket: int, dims: list[Dimension], n_trials: int,
                    sampler: str, seed: int, results: dict, metric: str, direction: str) -> list[dict[str, Any]]:
    """The trials of ``bracket``: read back from the journal, or drawn now by Optuna
    (told the final scores of the earlier brackets) and journaled before any training."""
    mine = [t for t in journal["trials"] if t["bracket"] == bracket]
    if mine:
        return mine
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dist = _distributions(dims)
    if sampler == "grid":  # every point of the grid once, in a seeded order, across brackets
        import itertools
        import random

        points = [dict(zip([d.name for d in dims], combo, strict=True)) for combo in itertools.product(*(d.values for d in dims))]
        random.Random(seed).shuffle(points)
        for params in points[len(journal["trials"]): len(journal["trials"]) + n_trials]:
            journal["trials"].append({"number": len(journal["trials"]), "bracket": bracket, "params": params})
        _write_json(journal_path, journal)
        return [t for t in journal["trials"] if t["bracket"] == bracket]
    if sampler == "tpe":
        algo = optuna.samplers.TPESampler(seed=seed + bracket, n_startup_trials=min(10, n_trials))
    else:
        algo = optuna.samplers.RandomSampler(seed=seed + bracket)
    study = optuna.create_study(direction="minimize" if direction == "min" else "maximize", sampler=algo)
    for t in journal["trials"]:  # what earlier brackets learned (and, for a grid, drew)
        last = max((r for (n, _), r in results.items() if n == t["number"]), key=lambda r: r["rung"], default=None)
        value = None if last is None else last["scores"].get(metric)
        if value is not None and math.isfinite(value):
            study.add_trial(optuna.trial.create_trial(params=t["params"], distributions=dist, value=value))
    for _ in range(n_trials):
        trial = study.ask(dist)
        journal["trials"].append({"number": len(journal["trials"]), "bracket": bracket, "params": trial.params})
    _write_json(journal_path, journal)
    return [t for t in journal["trials"] if t["bracket"] == bracket]


def _leaderboard(journal: dict[str, Any], results: dict, dims: list[Dimension], metric: str, direction: str,
                 sign: float) -> Leaderboard:
    records = []
    for t in journal["trials"]:
        mine = sorted((r for (n, _), r in results.items() if n == t["number"]), key=lambda r: r["rung"])
        if not mine:
            continue
        last = mine[-1]
        records.append({
            "trial": t["number"], **t["params"], "rows": last["rows"], "rounds": len(mine),
            **last["scores"], "history": [(r["rows"], r["scores"].get(metric)) for r in mine],
        })
    top_round = max(r["rounds"] for r in records)
    order = sorted(range(len(records)), key=lambda i: (-records[i]["rounds"], _score({"scores": records[i]}, metric, sign)))
    for rank, i in enumerate(order, start=1):
        records[i]["place"] = rank
        records[i]["status"] = "finished" if records[i]["rounds"] == top_round else "stopped"
    records[order[0]]["chosen"] = True
    board = Leaderboard(records, metric=metric, direction=direction, select="best", params=[d.name for d in dims])
    board.rows_trained = sum(r["rows"] for r in records)
    return board


def _finish(board: Leaderboard, workdir: Path, algorithm: str, config: dict[str, Any], out: Any, plot: Any) -> None:
    if out is not None:
        from onepass.io import save_model
        from onepass.io._models import load_state

        best = board.chosen
        state, _ = load_state(workdir / "trials" / f"{best['trial']:04d}" / "checkpoints")
        from onepass.tune._scorers import scorer_for

        model = scorer_for(state.kind).adjust(state.model(**config["finalize"]), best, board.metric)
        tune_info = board.to_json()
        for rec in tune_info["records"]:
            rec.pop("history", None)
        save_model(out, model, extra={"algorithm": algorithm, "finalize": config["finalize"],
                                      "hyperparameters": {**config["fixed"], **{k: best[k] for k in board.params}},
                                      "rows_seen": state.n_rows_seen_, "tune": tune_info})
    if plot is not None:
        from onepass.tune._plot import plot_leaderboard

        plot_leaderboard(board, plot)


if __name__ == "__main__":  # a worker: python -m onepass.tune._search JOB.json
    _job = json.loads(Path(sys.argv[1]).read_text())
    _run_job(_Job(**_job))
