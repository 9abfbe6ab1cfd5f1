"""Run the benchmark suite: prepare data, run every case in a fresh worker, render tables.

    python -m benchmarks                    # full run (~15-20 min), writes benchmarks/RESULTS.md
    python -m benchmarks --quick            # smoke test (< 1 min), writes benchmarks/data/RESULTS-quick.md
    python -m benchmarks --only kmeans,csv  # some families (or cases: --only 'kmeans.sk_*'; or
                                            # cases by label: 'deepar.statsforecast *Naive*')
    python benchmarks/run.py ...            # the same

Progress goes to stderr, the tables to stdout and to the Markdown file.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._registry import Config, Result, Table, Task  # noqa: E402
from benchmarks.cases import FAMILIES, load_family  # noqa: E402
from benchmarks.render import markdown_all  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_worker(task: Task, env: dict[str, str]) -> dict:
    """Run one task in a fresh ``python -m benchmarks.worker`` process; its JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.worker", task.case, "--params", json.dumps(task.params)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=task.timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {task.timeout_s:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        out = json.loads(lines[-1])
    else:
        tail = proc.stderr.strip().splitlines()[-3:]
        out = {"error": f"worker exited {proc.returncode} without a result: {' / '.join(tail)}"[:500]}
    if "error" in out:
        sys.stderr.write(proc.stderr[-3000:])
    out["process_s"] = time.perf_counter() - t0
    return out


def wait_for_quiet(max_wait_s: float, busy_limit: float = 0.3) -> float:
    """Wait (up to max_wait_s) until other processes use < busy_limit CPUs; seconds waited.

    The machine is shared with other work; a case started next to a busy neighbour
    measures the neighbour as much as itself.
    """
    from benchmarks._measure import system_busy_s

    t0 = time.perf_counter()
    while True:
        b0 = system_busy_s()
        time.sleep(0.5)
        busy = (system_busy_s() - b0) / 0.5
        waited = time.perf_counter() - t0
        if busy < busy_limit or waited >= max_wait_s:
            return waited


def code_fingerprint() -> dict:
    """git HEAD, and hashes of onepass/*.py as they are on disk (uncommitted edits included)."""
    import hashlib

    files = {
        str(f.relative_to(REPO)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted((REPO / "onepass").rglob("*.py"))
    }
    total = hashlib.sha256("".join(f"{k}:{v}" for k, v in files.items()).encode()).hexdigest()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "onepass"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        head, dirty = "?", ""
    return {"head": head or "?", "onepass_dirty": bool(dirty), "onepass_sha256": total[:12], "files": files}


def changed_files(a: dict, b: dict) -> list[str]:
    fa, fb = a["files"], b["files"]
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def selected(task: Task, only: list[str] | None) -> bool:
    if not only:
        return True
    fam = task.case.split(".", 1)[0]
    # a pattern with a space also matches the task's label: 'deepar.statsforecast *SeasonalNaive*'
    return any(pat == fam or fnmatch.fnmatch(task.case, pat) or fnmatch.fnmatch(f"{task.case} {task.label}", pat)
               for pat in only)


def machine_tables(facts: dict, probes: list[tuple[str, dict]]) -> list[Table]:
    if "error" in facts:
        return [Table("Machine", ["fact", "value"], [["error", facts["error"]]])]
    cpu = facts["cpu"]
    v = facts["versions"]
    blas = sorted(
        {
            f"{p.get('internal_api')} {p.get('version')} kernel {p.get('architecture')}, {p.get('num_threads')} threads"
            for p in facts["threading"]
            if p.get("user_api") == "blas"
        }
    )
    omp = sorted(
        {
            f"{p.get('internal_api')} {p.get('num_threads')} threads"
            for p in facts["threading"]
            if p.get("user_api") == "openmp"
        }
    )
    env = ", ".join(f"{k}={val}" for k, val in facts["env"].items() if val is not None) or "none set"
    rows = [
        ["nproc (affinity)", f"{facts['nproc']} ({facts['affinity']})"],
        [
            "CPU (lscpu)",
            f"{cpu.get('Model name')} family {cpu.get('CPU family')} model {cpu.get('Model')}, {cpu.get('Hypervisor vendor', 'bare metal')}, L2 {cpu.get('L2 cache')}, L3 {cpu.get('L3 cache')}",
        ],
        ["memory", f"{facts['mem_total_gb']:.1f} GiB"],
        ["Python", facts["python"]],
        ["versions", ", ".join(f"{k} {val}" for k, val in v.items() if val)],
        ["BLAS (threadpoolctl)", "; ".join(blas)],
        ["OpenMP (threadpoolctl)", "; ".join(omp) or "-"],
        ["BLAS/OpenMP env", env],
    ]
    for when, p in probes:
        if "error" in p:
            rows.append([f"matmul probe ({when})", p["error"]])
        else:
            rows.append(
                [
                    f"matmul probe ({when})",
                    f"{p['gflops_1t']:.0f} GFLOP/s 1 thread, {p['gflops_2t']:.0f} GFLOP/s 2 threads",
                ]
            )
    return [
        Table(
            "Machine",
            ["fact", "value"],
            rows,
            align="ll",
            notes=[
                "matmul probe: float32 (4096x50)@(50x100), the k-means distance shape. The second vCPU of this VM is erratic "
                "(anchor report section 6: 2-thread BLAS measured 6.7-178 GFLOP/s), so 2-thread numbers vary run to run; "
                "each case's threadpoolctl info and cpu/wall ratio are in the raw JSON (benchmarks/data/raw-*.json).",
                "The anchor report (/work/shared/reference/anchor-bench.md) was measured on AMD EPYC family 25 model 17 (Zen 4) "
                "with OpenBLAS kernel SkylakeX and OPENBLAS_CORETYPE unset; compare absolute numbers with it only with the rows above in mind. "
                "Ratios in this report come from one run on one machine.",
            ],
        )
    ]


def threading_table(results: dict[str, Result]) -> Table:
    """Which BLAS/OpenMP pools (threadpoolctl) each case saw, grouped by configuration."""
    groups: dict[str, list[str]] = {}
    for r in results.values():
        run = next(iter(r.ok_runs), None)
        if run is None:
            continue
        pools = sorted(
            {
                " ".join(str(x) for x in (p.get("internal_api"), p.get("version"), p.get("architecture")) if x)
                + f" x{p.get('num_threads')}"
                for p in run.get("threading", [])
            }
        )
        aff = run.get("affinity")
        key = "; ".join(pools) or "no BLAS/OpenMP loaded"
        key += f" | CPUs {','.join(map(str, aff))}" if aff else ""
        groups.setdefault(key, []).append(r.task.label or r.task.case)
    rows = [
        [k.split(" | ")[0], k.split(" | ")[1] if " | " in k else "", f"{len(v)}: " + "; ".join(v)]
        for k, v in groups.items()
    ]
    return Table(
        "Threading seen by each case (threadpoolctl, at the end of training)",
        ["pools (library version kernel x threads)", "CPU affinity", "cases"],
        rows,
        align="lll",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (100k rows, no 16M): a smoke test under a minute")
    ap.add_argument(
        "--only", default="", help=f"comma-separated families ({','.join(FAMILIES)}) or case globs (kmeans.sk_*)"
    )
    ap.add_argument(
        "--repeat", type=int, default=None, help="runs per timed case, round-robin (default 3; 1 with --quick)"
    )
    ap.add_argument(
        "--data-dir", type=Path, default=BENCH_DIR / "data", help="where generated data lives (default benchmarks/data)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown report (default benchmarks/RESULTS.md for a full run of everything, else benchmarks/data/RESULTS-<kind>.md)",
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="set OPENBLAS/OMP_NUM_THREADS for the workers (default: library defaults)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each case, wait up to this many seconds for other processes to go idle (default 30; 0 with --quick)",
    )
    ap.add_argument("--prepare-only", action="store_true", help="generate the missing data and exit")
    ap.add_argument("--list", action="store_true", help="list the planned tasks and exit")
    args = ap.parse_args(argv)

    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    if only:
        bad = [s for s in only if "." not in s and "*" not in s and s not in FAMILIES]
        if bad:
            ap.error(f"--only: unknown family {bad}; known: {', '.join(FAMILIES)}")
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 30.0)
    cfg = Config(quick=args.quick, repeat=repeat, data_dir=args.data_dir.resolve())
    out = args.out or (
        BENCH_DIR / "RESULTS.md"
        if not (args.quick or only)
        else cfg.data_dir / f"RESULTS-{'quick' if args.quick else 'partial'}.md"
    )

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.blas_threads)

    families = [load_family(name) for name in FAMILIES]
    plans = {f.name: [t for t in f.plan(cfg) if selected(t, only)] for f in families}
    families = [f for f in families if plans[f.name]]
    prep: dict[str, Task] = {}
    for f in families:
        for t in f.prepare(cfg):
            prep.setdefault(t.key, t)
    tasks = [t for f in families for t in plans[f.name]]
    if args.list:
        for t in prep.values():
            print(t.case, json.dumps(t.params))
        for t in tasks:
            print(t.case, json.dumps(t.params), "x", t.repeat or repeat)
        return 0

    code_start = code_fingerprint()
    started = _dt.datetime.now(_dt.UTC)
    t_run = time.perf_counter()
    log(f"{len(prep)} data sets, {len(tasks)} cases, repeat {repeat}, data in {cfg.data_dir}")
    facts = run_worker(Task("machine.facts", {}), env)
    probes = [("start", run_worker(Task("machine.matmul", {}), env))]

    prep_notes = []
    for t in prep.values():
        r = run_worker(t, {**env})
        if "error" in r:
            log(f"data {t.params}: {r['error']}")
        elif r.get("generated"):
            prep_notes.append(f"generated {Path(r['path']).name} ({r['bytes'] / 1e6:,.0f} MB) in {r['wall_s']:.1f} s")
            log(prep_notes[-1])

    if args.prepare_only:
        log("data ready")
        return 0
    results = {t.key: Result(t) for t in tasks}
    max_rep = max((t.repeat or repeat for t in tasks), default=0)
    for rep in range(max_rep):
        for t in tasks:
            if rep >= (t.repeat or repeat):
                continue
            waited = wait_for_quiet(quiet_wait) if quiet_wait > 0 else 0.0
            r = run_worker(t, env)
            r["waited_for_quiet_s"] = waited
            results[t.key].runs.append(r)
            what = (
                r.get("error")
                or r.get("skipped")
                or ", ".join(
                    f"{k}={r[k]:.4g}"
                    for k in ("wall_s", "rows_per_s", "mb_per_s", "peak_rss_mb")
                    if isinstance(r.get(k), (int, float))
                )
            )
            log(f"run {rep + 1}/{t.repeat or repeat} {t.label or t.case}: {what}")
    probes.append(("end", run_worker(Task("machine.matmul", {}), env)))

    code_end = code_fingerprint()
    tables = machine_tables(facts, probes)
    for f in families:
        tables += f.render(cfg, {k: v for k, v in results.items() if k in {t.key for t in plans[f.name]}})
    tables.append(threading_table(results))
    cmd = "python -m benchmarks" + (
        "" if argv is None and len(sys.argv) == 1 else " " + shlex.join(argv if argv is not None else sys.argv[1:])
    )
    elapsed = time.perf_counter() - t_run
    header = [
        "# onepass benchmarks",
        "",
        f"Produced by `{cmd}` (from the repository root, `.venv/bin/python`) on "
        f"{started:%Y-%m-%d %H:%M} UTC; the run took {elapsed / 60:.1f} min"
        f"{' (--quick: small sizes, not comparable with the full run)' if cfg.quick else ''}. "
        f"Timed cases ran {repeat} time(s) each, round-robin, every run in a fresh process.",
        "",
        "- rows/s: rows / wall s of the training loop only; streaming cases include reading the chunks from the .npy file "
        "(pulled into the page cache first, since this VM reclaims it proactively) with `np.fromfile`. Full KMeans loads the data before timing.",
        "- peak MB (base MB): peak RSS of the case's process at the end of training (/proc VmHWM; fresh process per case) "
        "and RSS just before training started (interpreter + imports, plus the data for full KMeans).",
        "- cpu/wall: process CPU time / wall time during training; ~2 means both vCPUs were busy, ~1 one. "
        "others: CPU time used by *other* processes on the machine during the case / wall time (the machine is shared; "
        "0 is a quiet machine, 1 is one vCPU taken by someone else). "
        f"Before each case the runner waited up to {quiet_wait:.0f} s for other processes to use < 0.3 CPU.",
        "",
    ]
    header.append(
        f"- code: git {code_start['head']}{' + uncommitted changes in onepass/' if code_start['onepass_dirty'] else ''}, "
        f"onepass/*.py sha256 {code_start['onepass_sha256']}."
    )
    changed = changed_files(code_start, code_end)
    if changed:
        header.append(
            f"- **warning: onepass/ changed during this run** (git {code_start['head']} -> {code_end['head']}; "
            f"{', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}): cases may mix code versions; rerun for a clean table."
        )
    header += [f"- data: {n}" for n in prep_notes + list(cfg.notes)]
    runs = [r for res in results.values() for r in res.ok_runs if r.get("wall_s")]
    noisy = [r for r in runs if r.get("other_cpu_s", 0) / r["wall_s"] > 0.3]
    if runs:
        header.append(
            f"- contention: {len(noisy)} of {len(runs)} timed runs had other processes using > 0.3 CPU meanwhile."
        )
    report = "\n".join(header) + "\n\n" + markdown_all(tables)
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    raw = cfg.data_dir / f"raw-{'quick' if cfg.quick else 'full'}-{started:%Y%m%dT%H%M%S}.json"
    raw.write_text(
        json.dumps(
            {
                "cmd": cmd,
                "facts": facts,
                "probes": probes,
                "results": [{"task": vars(r.task), "runs": r.runs} for r in results.values()],
            },
            indent=1,
            default=str,
        )
    )
    log(f"wrote {out} and {raw} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
