"""Memory: onepass._memory's zeroed tables for random access, on huge pages where Linux
offers them; and readers whose memory does not grow with the file they read."""

from __future__ import annotations

import io
import mmap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onepass import _memory
from onepass.sources import _parquet, open_source
from onepass.sources._base import Options
from onepass.sources._transport import Entry


@pytest.mark.parametrize("shape", [(3, 2, 5), (1000, 2, 32), (0, 3, 4)])
def test_small_tables_are_zeroed_aligned_and_writable(shape: tuple[int, ...]) -> None:
    a = _memory.zeros(shape, np.float32)
    assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or a.ctypes.data % _memory.LINE == 0  # (an empty array has no data to align)
    assert not a.any()
    a[...] = 7
    assert (a == 7).all()


def _huge_pages_offered() -> str | None:
    """Why this machine cannot give huge pages to a process that asks, or None."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return "mmap.MADV_HUGEPAGE is missing (not Linux)"
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists():
        return "no /sys/kernel/mm/transparent_hugepage"
    if "[never]" in mode.read_text():
        return "transparent huge pages are off ([never])"
    return None


def test_large_tables_sit_on_huge_pages() -> None:
    shape = (1 << 20, 2, 8)  # 64 MB
    a = _memory.zeros(shape, np.float32)
    assert a.shape == shape and a.flags.c_contiguous and not a[::4096].any()
    a[::1024] = 1.5  # touch every page
    assert a.sum() == 1.5 * a[::1024].size
    why_not = _huge_pages_offered()
    if why_not:
        # the fallback is an ordinary array: right values, only slower
        print(f"huge pages not checked: {why_not}")
        return
    assert a.ctypes.data % _memory.HUGE_PAGE == 0
    start = a.ctypes.data
    huge_kb = 0
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= start < hi
            elif inside and head == "AnonHugePages:":
                huge_kb = int(line.split()[1])
    # the kernel may fall short of free 2 MiB blocks, but not for most of 64 MB on an idle machine
    assert huge_kb * 1024 >= a.nbytes // 2, f"only {huge_kb} kB of {a.nbytes >> 10} kB on huge pages"


def _owner(a: np.ndarray) -> object:
    """What finally holds an array's memory: an ndarray of NumPy's own, or a buffer."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def test_huge_pages_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPASS_HUGE_PAGES", "0")
    a = _memory.zeros((1 << 20, 2, 8), np.float32)  # 64 MB: huge pages unless turned off
    assert isinstance(_owner(a), np.ndarray)  # NumPy's own allocation, no mapping of ours
    assert a.ctypes.data % _memory.LINE == 0 and not a[::4096].any()
    monkeypatch.setenv("ONEPASS_HUGE_PAGES", "1")
    b = _memory.zeros((1 << 20, 2, 8), np.float32)
    if _huge_pages_offered() is None:
        assert not isinstance(_owner(b), np.ndarray)  # the anonymous mapping


# -- Parquet: a reader holds a window of the file, not all it has read -------------------

N_ROWS, N_COLS, GROUP_ROWS = 1 << 20, 4, 1 << 14  # 16 MB of float32 in 64 row groups


@pytest.fixture(scope="module")
def many_row_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain and uncompressed, so the bytes read from disk are the bytes decoded."""
    path = tmp_path_factory.mktemp("parquet") / "groups.parquet"
    X = np.random.default_rng(0).normal(size=(N_ROWS, N_COLS)).astype(np.float32)
    pq.write_table(pa.table({f"x{j}": X[:, j] for j in range(N_COLS)}), path,
                   row_group_size=GROUP_ROWS, compression="none", use_dictionary=False)
    return path


def test_parquet_local_file_holds_a_bounded_part_of_it(many_row_groups: Path) -> None:
    # pyarrow's pre-buffering (its default) kept every row group read until the end: the
    # pool grew to the whole file (a 5M-row file peaked at 1.8 GB RSS, 500k rows at 0.47 GB)
    size = many_row_groups.stat().st_size
    base, peak, rows = pa.total_allocated_bytes(), 0, 0
    with open_source(many_row_groups, batch_size=4096) as src:
        for batch in src:
            rows += batch.n_rows
            peak = max(peak, pa.total_allocated_bytes() - base)
    assert rows == N_ROWS
    assert peak < size / 4, f"pyarrow's pool grew by {peak >> 20} MB reading a {size >> 20} MB file"


class _Held(bytes):
    """Bytes a read returned, counted until pyarrow drops the last reference to them."""

    def __del__(self) -> None:
        _Held.live -= len(self)

    live = 0
    peak = 0


class _CountingFile(io.RawIOBase):
    def __init__(self, path: str) -> None:
        self._f = open(path, "rb")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, n: int = -1) -> bytes:
        data = _Held(self._f.read(n))
        _Held.live += len(data)
        _Held.peak = max(_Held.peak, _Held.live)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


class _CountingFS:
    """An fsspec-like filesystem: the reader gets a handle, as from s3://, not a path."""

    def open(self, path: str, mode: str = "rb") -> _CountingFile:
        return _CountingFile(path)


def test_parquet_remote_file_holds_one_window_of_row_groups(many_row_groups: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # a handle keeps pre-buffering (coalesced requests), one window of row groups per call
    monkeypatch.setattr(_parquet, "_WINDOW_BYTES", 1 << 20)
    size = many_row_groups.stat().st_size
    _Held.live = _Held.peak = 0
    reader = _parquet.ParquetReader(Options(batch_size=4096))
    entry = Entry("remote://groups.parquet", str(many_row_groups), fs=_CountingFS())
    rows = sum(len(chunk) for chunk in reader.read(entry, None))
    assert rows == N_ROWS
    assert _Held.peak < size / 4, f"{_Held.peak >> 20} MB read and held at once of a {size >> 20} MB file"
