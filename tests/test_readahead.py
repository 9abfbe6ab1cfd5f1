"""Read-ahead keeps order, raises errors where they happened, and stops when closed."""

from __future__ import annotations

import threading
import time

import pytest

from onepass._readahead import read_ahead


def test_order_and_completeness() -> None:
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_error_is_raised_after_the_items_before_it() -> None:
    def produce():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise ValueError("line 3 of x.csv: bad")

    got = []
    with pytest.raises(ValueError, match="line 3"):
        for item in read_ahead(produce()):
            got.append(item)
    assert got == [1, 2]


def test_closing_early_stops_the_reader_and_reads_boundedly() -> None:
    produced = []

    def produce():  # type: ignore[no-untyped-def]
        for i in range(10_000):
            produced.append(i)
            yield i

    gen = read_ahead(produce(), depth=2)
    assert next(gen) == 0
    time.sleep(0.2)
    assert len(produced) <= 4, "read further ahead than its depth"
    gen.close()
    time.sleep(0.3)
    assert len(produced) <= 5
    assert not [t for t in threading.enumerate() if t.name == "onepass-read-ahead"]
