"""Named failpoints: a way for tests to kill the process at an exact instant.

Crash-safety is only shown by crashing at the worst moments (half an array written, the
manifest written but not renamed, the rename done but LATEST not updated). Code calls
``hit("name")`` at those instants; it does nothing unless the environment variable
``ONEPASS_FAILPOINT`` is ``name`` or ``name:N`` (the N-th hit, 1-based), in which case
the process SIGKILLs itself, as ``kill -9`` would. Read once at import.

With ``ONEPASS_FAILPOINT_ONCE`` set to a file path, a due failpoint fires only in the
process that creates that file first: among many worker processes of one job, exactly
one dies (and the workers that replace it do not).
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("ONEPASS_FAILPOINT", "")
_NAME, _, _NTH = _SPEC.partition(":")
_TARGET = int(_NTH) if _NTH else 1
_ONCE = os.environ.get("ONEPASS_FAILPOINT_ONCE", "")
_hits = 0


def hit(name: str) -> None:
    """SIGKILL this process if the failpoint ``name`` is armed and due."""
    global _hits
    if not _NAME or name != _NAME:
        return
    _hits += 1
    if _hits == _TARGET:
        if _ONCE:
            try:
                os.close(os.open(_ONCE, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)
