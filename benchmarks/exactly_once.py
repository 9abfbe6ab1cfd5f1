"""Exactly once at scale: a record transport read by `onepass train`, SIGKILLed at random
instants and resumed, against one unkilled run on the same records.

    python -m benchmarks.exactly_once postgresql --rows 1000000 --kills 20
    python -m benchmarks.exactly_once redis --rows 1000000 --kills 20
    python -m benchmarks.exactly_once redis --rows 1000000 --kills 20 --exclusive

PostgreSQL: a table of ``--rows`` rows (d=20, an ``id`` key), read with ``--key-column id``.
Redis: a stream that a producer thread fills while the consumer runs (``--rows`` entries in
all, added in bursts of 10,000 as fast as Redis takes them), read by one consumer of a
group (``--exclusive``: by an exclusive reader, ``?exclusive=1``); the unkilled run reads
the same entries afterwards through a second group. Both train
K-Means (k=10; Redis: PCA's exact sums, which do not depend on where batches are cut, as
a stream's runs cut them where the entries ended when each started), checkpointing every
``--every`` rows; the kills land at random instants
spread over the rows (see ``_kill_and_resume``), each followed by ``--resume``.
What is printed: the kills that landed, the rows the killed job counted against the
records there are, the largest difference of its state from the unkilled run's (relative
to the largest value of the array it is in), and (Redis)
the group's pending entries at the end. Servers are started on loopback by the tests'
server modules and stopped after. Not a speed measure: `make bench` is.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tests.checkpoints_seen import rows_checkpointed

D, K = 20, 10


def _blobs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 5, (K, D))
    return (centers[rng.integers(0, K, n)] + rng.standard_normal((n, D))).astype(np.float32)


KMEANS = ["kmeans", "--n-clusters", str(K)]
PCA_EXACT = ["pca", "--n-components", "4", "--mode", "exact"]


def _train(uri: str, work: Path, every: int, batch: int, extra: list[str], algorithm: list[str] = KMEANS) -> list[str]:
    return [sys.executable, "-m", "onepass.cli", "train", *algorithm, "--data", uri, *extra, "--seed", "7", "--batch-size", str(batch), "--checkpoint-dir", str(work / "ckpt"),
            "--checkpoint-every-rows", str(every), "--resume", "--out", str(work / "model"), "--quiet"]


def _kill_and_resume(cmd: list[str], ckpt: Path, kills: int, n: int, rng: np.random.Generator,
                     busy: threading.Event | None = None) -> tuple[int, int]:
    """Start ``cmd`` and SIGKILL it ``kills`` times at random instants spread over the
    ``n`` rows (each kill once the checkpoints have passed a row drawn between the last
    checkpoint and an even share of what is left, then a random fraction of a second on),
    then run it to the end (and again while ``busy`` is set: a stream still being filled has
    more). A run that reads everything before its kill ends the kills. Returns (kills
    landed, runs)."""
    landed = runs = 0
    while landed < kills:
        before = rows_checkpointed(ckpt)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        runs += 1
        target = before + rng.uniform(0, 2) * (n - before) / (kills - landed + 1)
        while proc.poll() is None and rows_checkpointed(ckpt) < target:
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0, 0.2)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 1
        elif proc.returncode != 0:
            raise SystemExit(f"a run failed: {proc.stderr.read().decode()}")
        elif rows_checkpointed(ckpt) >= n:
            break
    while True:
        still = busy is not None and busy.is_set()
        done = subprocess.run(cmd, capture_output=True, text=True)
        runs += 1
        if done.returncode != 0:
            raise SystemExit(f"the last run failed: {done.stderr}")
        if not still:
            return landed, runs


def _compare(killed: Path, clean: Path) -> tuple[int, float]:
    from onepass.io import load_checkpoint

    a, _ = load_checkpoint(killed / "ckpt")
    b, _ = load_checkpoint(clean / "ckpt")
    arrays_a, arrays_b = a.to_arrays()[1], b.to_arrays()[1]
    worst = 0.0  # the largest difference, relative to the largest value of its array
    for k in arrays_b:
        x, y = np.asarray(arrays_a[k], float), np.asarray(arrays_b[k], float)
        if y.size and y.dtype.kind in "fiu":
            worst = max(worst, float(np.max(np.abs(x - y))) / max(float(np.max(np.abs(y))), 1e-300))
    return int(a.n_rows_seen_), worst


def postgresql(n: int, kills: int, every: int, batch: int, folder: Path, rng: np.random.Generator) -> None:
    from tests.transports.postgres_server import postgres_server

    X = _blobs(n)
    with postgres_server() as server:
        with server.connect() as conn:
            cols = ", ".join(f"x{j} real" for j in range(D))
            conn.execute(f"CREATE TABLE points (id bigint PRIMARY KEY, {cols})")
            with conn.cursor().copy("COPY points FROM STDIN") as copy:
                for i, row in enumerate(X.tolist(), start=1):
                    copy.write_row((i, *row))
        extra = ["--query", "SELECT * FROM points", "--key-column", "id"]
        started = time.perf_counter()
        landed, runs = _kill_and_resume(_train(server.uri, folder / "killed", every, batch, extra),
                                        folder / "killed" / "ckpt", kills, n, rng)
        seconds = time.perf_counter() - started
        clean = subprocess.run(_train(server.uri, folder / "clean", every, batch, extra), capture_output=True, text=True)
        assert clean.returncode == 0, clean.stderr
    rows, worst = _compare(folder / "killed", folder / "clean")
    print(json.dumps({"transport": "postgresql", "rows_in_table": n, "kills_landed": landed, "runs": runs,
                      "rows_counted": rows, "exactly_once": rows == n, "largest_state_difference": worst,
                      "killed_job_seconds": round(seconds, 1)}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["postgresql", "redis"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--every", type=int, default=50_000, help="rows between checkpoints")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclusive", action="store_true", help="Redis: the killed job reads with ?exclusive=1")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="onepass-once-") as tmp:
        if args.transport == "redis":
            redis(args.rows, args.kills, args.every, args.batch_size, Path(tmp), rng, exclusive=args.exclusive)
        else:
            postgresql(args.rows, args.kills, args.every, args.batch_size, Path(tmp), rng)


def redis(n: int, kills: int, every: int, batch: int, folder: Path, rng: np.random.Generator,
          exclusive: bool = False) -> None:
    from tests.transports.redis_server import redis_server

    X = _blobs(n)
    lines = [",".join(f"{v:.7g}" for v in row) for row in X.tolist()]
    with redis_server() as server:
        client = server.client()
        client.xgroup_create("points", "killed", id="0", mkstream=True)
        filling = threading.Event()
        filling.set()

        def produce() -> None:  # bursts of 10,000 entries while the consumer is killed and resumed
            try:
                for at in range(0, n, 10_000):
                    pipe = client.pipeline(transaction=False)
                    for line in lines[at:at + 10_000]:
                        pipe.xadd("points", {"row": line})
                    pipe.execute()
                    time.sleep(0.05)
            finally:
                filling.clear()

        producer = threading.Thread(target=produce)
        killed_uri = server.uri + ("?exclusive=1" if exclusive else "")
        extra = ["--stream", "points", "--format", "csv"]
        started = time.perf_counter()
        producer.start()
        landed, runs = _kill_and_resume(_train(killed_uri, folder / "killed", every, batch,
                                               [*extra, "--group", "killed"], PCA_EXACT),
                                        folder / "killed" / "ckpt", kills, n, rng, busy=filling)
        producer.join()
        _kill_and_resume(_train(killed_uri, folder / "killed", every, batch, [*extra, "--group", "killed"], PCA_EXACT),
                         folder / "killed" / "ckpt", 0, n, rng)  # what came after the last run started
        seconds = time.perf_counter() - started
        pending = int(client.xpending("points", "killed")["pending"])
        clean = subprocess.run(_train(server.uri, folder / "clean", every, batch, [*extra, "--group", "clean"],
                                      PCA_EXACT),
                               capture_output=True, text=True)
        assert clean.returncode == 0, clean.stderr
    rows, worst = _compare(folder / "killed", folder / "clean")
    print(json.dumps({"transport": "redis", "exclusive": exclusive, "entries_produced": n, "kills_landed": landed, "runs": runs,
                      "rows_counted": rows, "exactly_once": rows == n, "pending_at_end": pending,
                      "largest_state_difference": worst, "killed_job_seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
