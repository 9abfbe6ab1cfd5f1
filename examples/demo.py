"""onepass in one minute: train once on a folder of CSV files, finalize many models, predict, draw.

This is what ``make demo`` runs. It uses onepass the way a user does, through the
``onepass`` command, and only reads what the command writes (metrics lines, model
manifests via ``onepass inspect``, prediction files)::

    python examples/demo.py --workdir demo-output

Steps:

1. generate Gaussian blobs with a known number of clusters, written as a few CSV files
   in one folder (the folder is the source);
2. ``onepass train kmeans`` over the folder, with checkpoints, a metrics file and a seed;
3. ``onepass finalize`` the one trained state into models for many K, without reading
   the data again ("train once, tune after");
4. ``onepass tune`` the same state on a fresh validation file: every K from 2 to the
   centers kept, scored by BIC, the leaderboard drawn in ``tune.png``;
5. ``onepass predict`` to .csv and .parquet;
6. print a summary and draw ``kmeans.png``: the data coloured by cluster with the
   centers for a few K, and the estimated inertia against K (the elbow).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

TRUE_CENTERS = np.array([[-6.0, -3.0], [-2.0, 5.0], [3.0, 0.0], [7.0, 6.0], [8.0, -5.0]])
TRUE_SCALES = np.array([1.0, 1.4, 0.8, 1.2, 1.0])


def onepass(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``onepass`` command of this Python, as a user would from a shell."""
    cmd = [sys.executable, "-m", "onepass.cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"demo: `onepass {' '.join(args)}` failed with exit code {proc.returncode}")
    return proc


def make_blobs(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn from five 2-D Gaussian blobs of different sizes; returns (X, true cluster)."""
    rng = np.random.default_rng(seed)
    shares = np.array([0.3, 0.2, 0.2, 0.15, 0.15])
    truth = rng.choice(len(TRUE_CENTERS), size=n_rows, p=shares)
    X = TRUE_CENTERS[truth] + rng.normal(size=(n_rows, 2)) * TRUE_SCALES[truth, None]
    return X.astype(np.float32), truth


def write_csv_folder(X: np.ndarray, folder: Path, n_files: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(np.array_split(X, n_files)):
        path = folder / f"part-{i:03d}.csv"
        np.savetxt(path, part, fmt="%.5f", delimiter=",", header="x0,x1", comments="")
        paths.append(path)
    return paths


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_predictions_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return table[:, 0].astype(np.int64), table[:, 1]


def draw(out: Path, sample: np.ndarray, panels: list[tuple[int, np.ndarray, np.ndarray]],
         ks: list[int], inertias: list[float], true_k: int, n_rows: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = 2
    n_rows_grid = -(-(len(panels) + 1) // n_cols)
    fig, grid = plt.subplots(n_rows_grid, n_cols, figsize=(6 * n_cols, 5.2 * n_rows_grid), constrained_layout=True)
    axes = list(np.ravel(grid))
    for ax, (k, labels, centers) in zip(axes, panels, strict=False):
        ax.scatter(sample[:, 0], sample[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=3, alpha=0.5,
                   linewidths=0, rasterized=True)
        ax.scatter(centers[:, 0], centers[:, 1], marker="X", s=180, c="black", edgecolors="white",
                   linewidths=1.5, label="centers")
        ax.set_title(f"K = {k}" + ("  (the true number)" if k == true_k else ""))
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="upper left", fontsize=8)
    ax = axes[len(panels)]
    for unused in axes[len(panels) + 1:]:
        unused.set_visible(False)
    ax.plot(ks, inertias, "o-", color="tab:blue")
    ax.axvline(true_k, color="gray", linestyle="--", linewidth=1)
    ax.annotate(f"true K = {true_k}", (true_k, max(inertias)), xytext=(6, -4), textcoords="offset points",
                va="top", color="gray")
    ax.set_yscale("log")
    ax.set_xticks(ks)
    ax.set_xlabel("K (finalized from one trained state)")
    ax.set_ylabel("estimated inertia (sum of squared distances)")
    ax.set_title("Elbow: inertia against K")
    ax.grid(True, alpha=0.3)
    fig.suptitle(f"onepass streaming K-Means: one pass over {n_rows:,} rows,\nevery K finalized from the "
                 f"same trained state ({sample.shape[0]:,} rows shown)", fontsize=12)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="demo-output", help="where everything is written (replaced)")
    parser.add_argument("--rows", type=int, default=300_000, help="rows of data to generate")
    parser.add_argument("--files", type=int, default=4, help="CSV files the rows are split into")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    true_k = len(TRUE_CENTERS)
    ks = list(range(1, 9))
    panel_ks = [3, true_k, 8]

    # 1. data: a folder of CSV files, and the true cluster of every row for checking.
    X, truth = make_blobs(args.rows, args.seed)
    data_dir = work / "data"
    files = write_csv_folder(X, data_dir, args.files)
    print(f"data:      {args.rows:,} rows x 2 features, {true_k} true clusters, "
          f"{len(files)} CSV files in {data_dir}/")

    # 2. train once over the folder, with checkpoints and a metrics file.
    metrics_path = work / "metrics.jsonl"
    model_dir = work / "model"
    onepass("train", "kmeans", "--data", str(data_dir), "--n-clusters", str(true_k), "--seed", str(args.seed),
            "--checkpoint-dir", str(work / "checkpoints"), "--checkpoint-every-rows", "100000",
            "--metrics", str(metrics_path), "--out", str(model_dir), "--quiet")
    metrics = read_metrics(metrics_path)
    end = next(m for m in reversed(metrics) if m["event"] == "epoch_end")
    n_checkpoints = sum(m["event"] == "checkpoint" for m in metrics)
    print(f"train:     {end['rows']:,} rows in {end['elapsed_s']:.2f} s = {end['rows_per_s']:,.0f} rows/s, "
          f"{n_checkpoints} checkpoints during the pass, {end.get('n_live_centers', '?')} centers kept")

    # 3. finalize one model per K from the one state; no data is read. The commands
    # are independent, so they run side by side.
    model_dirs = {k: work / "models" / f"k{k}" for k in ks}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda k: onepass("finalize", str(model_dir), "--n-clusters", str(k),
                                        "--out", str(model_dirs[k])), ks))
        manifests = dict(zip(ks, pool.map(lambda k: json.loads(onepass("inspect", str(model_dirs[k]), "--json").stdout),
                                          ks), strict=True))
    inertias = [float(manifests[k]["meta"]["inertia"]) for k in ks]

    # 4. tune: which K does a validation sample (fresh rows) prefer? One read of it scores
    # every K finalized from the one state.
    V, _ = make_blobs(50_000, args.seed + 1)
    val_path = work / "validation.csv"
    np.savetxt(val_path, V, fmt="%.5f", delimiter=",", header="x0,x1", comments="")
    tuned = json.loads(onepass("tune", str(model_dir), "--validation", str(val_path), "--param", "n_clusters=2:16",
                               "--plot", str(work / "tune.png"), "--out", str(work / "models" / "tuned"),
                               "--json").stdout)
    chosen = next(r for r in tuned["records"] if r.get("chosen"))
    print(f"tune:      K=2..16 scored on {len(V):,} fresh rows by {tuned['metric']}: K={chosen['n_clusters']} chosen "
          f"(true K={true_k}); leaderboard drawn in tune.png")

    # 5. predict every row with the true K, to .csv (from a glob) and .parquet (from the folder).
    pred_csv, pred_parquet = work / "predictions.csv", work / "predictions.parquet"
    jobs = [
        ("predict", str(model_dirs[true_k]), "--data", str(data_dir / "*.csv"), "--out", str(pred_csv)),
        ("predict", str(model_dirs[true_k]), "--data", str(data_dir), "--out", str(pred_parquet)),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: onepass(*job), jobs))

    import pyarrow.parquet as pq

    labels, distances = read_predictions_csv(pred_csv)
    parquet = pq.read_table(pred_parquet)
    same = bool(np.array_equal(parquet.column("closest_cluster").to_numpy(), labels))
    exact_inertia = float(np.sum(distances.astype(np.float64) ** 2))
    from sklearn.metrics import adjusted_rand_score

    ari = adjusted_rand_score(truth, labels)
    print(f"predict:   {labels.size:,} rows -> {pred_csv.name} and {pred_parquet.name} "
          f"(identical labels: {same}); agreement with the true clusters (ARI) = {ari:.3f}")
    print("finalize:  K  estimated inertia   (from `onepass inspect`)")
    for k, inertia in zip(ks, inertias, strict=True):
        note = f"   exact on the data: {exact_inertia:,.0f}" if k == true_k else ""
        print(f"           {k:2d}  {inertia:16,.0f}{note}")

    # 6. the picture: a sample of the rows, labelled by the models of a few K. The Python
    # API loads the very artifacts the commands wrote (one code path for both).
    import onepass as onepass_api

    rng = np.random.default_rng(args.seed + 1)
    sample_idx = np.sort(rng.choice(args.rows, size=min(args.rows, 6000), replace=False))
    panels = []
    for k in panel_ks:
        model = onepass_api.load(model_dirs[k])
        panels.append((k, model.predict(X[sample_idx]), model.cluster_centers_))
    assert np.array_equal(panels[1][1], labels[sample_idx]), "the Python API and `onepass predict` disagree"
    picture = work / "kmeans.png"
    draw(picture, X[sample_idx], panels, ks, inertias, true_k, args.rows)
    print(f"done in {time.perf_counter() - started:.1f} s. The picture is at {picture.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
