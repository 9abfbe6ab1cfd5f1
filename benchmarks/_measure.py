"""What every case measures the same way: time, CPU, RSS, threading, chunked .npy I/O."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_mb() -> float:
    """Resident set size now (VmRSS), MB."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM), MB."""
    return _status_mb("VmHWM")


def system_busy_s() -> float:
    """CPU seconds all processes of the machine have spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Time, CPU time and memory of the block it wraps.

    ``base_rss_mb`` is the RSS right before the block, ``peak_rss_mb`` the process's
    high-water mark right after it (the process is fresh, so the peak is this case's).
    ``cpu_s / wall_s`` near 2 means both vCPUs worked, near 1 means one did.
    ``other_cpu_s`` is the CPU time the rest of the machine used meanwhile: the machine
    is shared, and a number measured next to a busy neighbour is not worth much.
    """

    def __enter__(self) -> Meter:
        self.base_rss_mb = rss_mb()
        self._t = os.times()
        self._busy = system_busy_s()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._t0
        t = os.times()
        self.cpu_s = (t.user - self._t.user) + (t.system - self._t.system)
        self.other_cpu_s = max(0.0, system_busy_s() - self._busy - self.cpu_s)
        self.peak_rss_mb = peak_rss_mb()
        # Anonymous vs file-backed (mmap) resident memory now: an mmap'd input counts in
        # RSS and VmHWM although the kernel can drop it; this tells the two apart.
        self.rss_anon_mb = _status_mb("RssAnon")
        self.rss_file_mb = _status_mb("RssFile")

    def as_dict(self) -> dict[str, float]:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "other_cpu_s": self.other_cpu_s,
            "base_rss_mb": self.base_rss_mb,
            "peak_rss_mb": self.peak_rss_mb,
            "end_rss_anon_mb": self.rss_anon_mb,
            "end_rss_file_mb": self.rss_file_mb,
        }


def threading_info() -> list[dict]:
    """threadpoolctl's view of the BLAS/OpenMP pools loaded now (kernel, threads)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "num_threads", "version", "architecture", "threading_layer")
    return [{k: p.get(k) for k in keep if p.get(k) is not None} for p in threadpool_info()]


def warm_page_cache(*paths: str | Path) -> None:
    """Pull files into the page cache without touching this process's memory.

    This VM reclaims page cache proactively (a 3.2 GB file written minutes earlier read
    back at ~620 MB/s from disk, 11 GB/s once cached), so whichever case reads a file
    first would pay the disk. ``sendfile`` to /dev/null reads every page in the kernel,
    with no user-space buffer, so neither RSS nor the peak changes.
    """
    out = os.open(os.devnull, os.O_WRONLY)
    try:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                size, off = os.fstat(fd).st_size, 0
                while off < size:
                    n = os.sendfile(out, fd, off, min(1 << 30, size - off))
                    if n == 0:
                        break
                    off += n
            finally:
                os.close(fd)
    finally:
        os.close(out)


def npy_layout(path: str | Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and byte offset of the data of a C-order .npy file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if fortran:
            raise ValueError(f"{path}: Fortran-order .npy is not supported here")
        return shape, dtype, f.tell()


def iter_npy_chunks(path: str | Path, chunk_rows: int, max_rows: int | None = None) -> Iterator[np.ndarray]:
    """Read a 2-D .npy file in chunks with ``np.fromfile`` (no mmap), as a stream would."""
    (n, d), dtype, offset = npy_layout(path)
    if max_rows is not None:
        n = min(n, max_rows)
    with open(path, "rb") as f:
        f.seek(offset)
        done = 0
        while done < n:
            m = min(chunk_rows, n - done)
            a = np.fromfile(f, dtype=dtype, count=m * d)
            if a.size != m * d:
                raise OSError(f"{path}: short read at row {done}")
            done += m
            yield a.reshape(m, d)


def write_npy_chunked(path: Path, shape: tuple[int, int], dtype, chunks) -> None:
    """Write a .npy file from an iterator of row chunks, in bounded memory, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    rows = 0
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_2_0(f, header)
        for c in chunks:
            c = np.ascontiguousarray(c, dtype=dtype)
            c.tofile(f)
            rows += c.shape[0]
    if rows != shape[0]:
        tmp.unlink()
        raise RuntimeError(f"{path}: wrote {rows} rows, expected {shape[0]}")
    os.replace(tmp, path)
