"""Generated data sets: where they live and how they are made (fixed seeds, chunk by chunk).

Blobs follow the anchor report (``/work/shared/reference/anchor-bench.md`` section 1):
k true centers ~ N(0, 0.5²) per coordinate, per-blob std ~ U(0.8, 1.2), labels uniform.
Rows are generated in chunks of :data:`GEN_CHUNK` rows, each from its own seeded
generator, so memory stays bounded and the first n rows of a longer file equal the
shorter file with the same (k, d, seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks._measure import write_npy_chunked

GEN_CHUNK = 100_000


def blob_paths(data_dir: Path, k: int, n: int, d: int, seed: int, scale: float = 1.0) -> tuple[Path, Path]:
    """(.npy of float32 features, .npy of int16 true labels) for these blob parameters."""
    tag = f"blobs_k{k}_d{d}_n{n}_s{seed}" + ("" if scale == 1.0 else f"_x{scale:g}")
    return data_dir / f"{tag}.npy", data_dir / f"{tag}_labels.npy"


def blob_centers(k: int, d: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, k, d, 0xC0FFEE])
    centers = rng.normal(0.0, 0.5, size=(k, d)) * scale
    stds = rng.uniform(0.8, 1.2, size=k) * scale
    return centers.astype(np.float32), stds.astype(np.float32)


def blob_chunks(k: int, n: int, d: int, seed: int, scale: float = 1.0):
    """Yield (X float32, labels int16) chunks of the blob data set, in row order."""
    centers, stds = blob_centers(k, d, seed, scale)
    for i, start in enumerate(range(0, n, GEN_CHUNK)):
        m = min(GEN_CHUNK, n - start)
        rng = np.random.default_rng([seed, k, d, i])
        labels = rng.integers(0, k, size=m)
        X = rng.standard_normal((m, d), dtype=np.float32)
        X *= stds[labels, None]
        X += centers[labels]
        yield X, labels.astype(np.int16)


def make_blobs_npy(data_dir: Path, k: int, n: int, d: int, seed: int, scale: float = 1.0) -> dict:
    """Write the blob data set and its labels unless both exist. Returns what was done."""
    xp, yp = blob_paths(data_dir, k, n, d, seed, scale)
    if xp.exists() and yp.exists():
        return {"path": str(xp), "generated": False, "bytes": xp.stat().st_size}
    data_dir.mkdir(parents=True, exist_ok=True)
    labels: list[np.ndarray] = []

    def xs():
        for X, y in blob_chunks(k, n, d, seed, scale):
            labels.append(y)  # 2 bytes a row: 32 MB at 16M rows
            yield X

    write_npy_chunked(xp, (n, d), np.float32, xs())
    write_npy_chunked(yp, (n,), np.int16, labels)
    return {"path": str(xp), "generated": True, "bytes": xp.stat().st_size}


# --- CSV -------------------------------------------------------------------------------

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


def format_csv_fixed6(X: np.ndarray) -> bytes:
    """Format rows as ``%.6f`` CSV text, vectorized (np.savetxt is ~10x slower).

    Each value becomes a fixed-width byte field (sign, integer digits, '.', 6 decimals,
    separator) with NUL padding in place of leading zeros; dropping the NULs gives the
    same text as ``np.savetxt(fmt="%.6f", delimiter=",")`` except that a negative
    zero is written ``0.000000``.
    """
    n, d = X.shape
    q = np.rint(np.abs(X.astype(np.float64)) * 1e6).astype(np.int64)
    neg = (X < 0) & (q != 0)
    ip, fp = np.divmod(q, 1_000_000)
    n_int = max(1, len(str(int(ip.max())))) if ip.size else 1
    width = 1 + n_int + 1 + 6 + 1
    buf = np.zeros((n, d, width), dtype=np.uint8)
    buf[:, :, 0] = np.where(neg, ord("-"), 0)
    for j in range(n_int):
        p = 10 ** (n_int - 1 - j)
        digit = _DIGITS[(ip // p) % 10]
        show = (ip >= p) | (j == n_int - 1)
        buf[:, :, 1 + j] = np.where(show, digit, 0)
    buf[:, :, 1 + n_int] = ord(".")
    for j in range(6):
        buf[:, :, 2 + n_int + j] = _DIGITS[(fp // 10 ** (5 - j)) % 10]
    buf[:, :, -1] = ord(",")
    buf[:, -1, -1] = ord("\n")
    flat = buf.reshape(-1)
    return flat[flat != 0].tobytes()


def csv_paths(data_dir: Path, n: int, d: int, seed: int) -> tuple[Path, Path]:
    """(CSV text, .npy of the same values as float32) for the CSV parse benchmark."""
    tag = f"floats_d{d}_n{n}_s{seed}"
    return data_dir / f"{tag}.csv", data_dir / f"{tag}.npy"


CSV_SCALE = 10.0  # blobs x10 so values look like -12.345678


def make_csv(data_dir: Path, n: int, d: int, seed: int) -> dict:
    """Write a headerless CSV of %.6f floats (k=10 blobs x10) and its float32 twin."""
    cp, npyp = csv_paths(data_dir, n, d, seed)
    if cp.exists() and npyp.exists():
        return {"path": str(cp), "generated": False, "bytes": cp.stat().st_size}
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = cp.with_name(cp.name + ".tmp")

    def values():
        for X, _ in blob_chunks(10, n, d, seed, CSV_SCALE):
            X = np.round(X.astype(np.float64), 6)
            f.write(format_csv_fixed6(X))
            yield X.astype(np.float32)

    with open(tmp, "wb") as f:
        write_npy_chunked(npyp, (n, d), np.float32, values())
    tmp.replace(cp)
    return {"path": str(cp), "generated": True, "bytes": cp.stat().st_size}
