"""Read ahead: a thread pulls the next batches while the caller works on this one.

Parsing (pyarrow, NumPy) and the algorithms' hot loops release the GIL, so reading the
next batch overlaps with learning from this one: a CSV-fed run costs about the larger
of the two instead of their sum. The queue is bounded (``depth`` batches), so memory
stays fixed; the source is only ever touched by the reading thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, produced up to ``depth`` ahead by a background thread.

    An exception raised while producing is raised here, at the item where it happened.
    Closing the generator early stops the thread.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            slots.put(_Failure(error))

    thread = threading.Thread(target=produce, name="onepass-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
