"""onepass._memory: zeroed tables for random access, on huge pages where Linux offers them."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from onepass import _memory


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
