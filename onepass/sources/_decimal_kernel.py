"""The compiled readers' one decimal number parser (libsvm blocks, Redis replies).

``[+-]digits[.digits][(e|E)[+-]digits]`` read where it lies in a byte buffer, as a
decimal mantissa scaled by an exact power of ten (up to 1e22): one IEEE multiply or
divide. With ``exact``, only numbers whose float64 that way is the correctly rounded one
are read (at most 18 digits, a mantissa below 2**53: the very value ``float(text)``
gives); others are not ok, left to the caller's careful path. Without it, the first 18
significant digits are kept (within one float64 rounding of the correctly rounded value,
the same float32 but for ties), so long mantissas stay on the fast path. Anything else
(``nan``, ``inf``, ``1_0``, spaces, an exponent past 22) is not ok.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["POW10", "decimal"]

POW10 = np.array([10.0**k for k in range(23)])
_MAX_MANTISSA = 2**53
_DOT, _PLUS, _MINUS, _ZERO, _NINE, _E, _e = 46, 43, 45, 48, 57, 69, 101


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def decimal(buf, i, end, pow10, exact):  # pragma: no cover - compiled
    """(value, index after it, ok) of the decimal number at ``buf[i]``, reading no further
    than ``end``; not ok when there is none there (or, ``exact``, not one read exactly)."""
    negative = False
    if i < end and (buf[i] == _MINUS or buf[i] == _PLUS):
        negative = buf[i] == _MINUS
        i += 1
    mantissa = 0
    kept = 0  # significant digits in the mantissa
    written = 0  # every digit, leading zeros too
    exponent = 0
    while i < end and _ZERO <= buf[i] <= _NINE:
        written += 1
        if kept < 18:
            mantissa = mantissa * 10 + (buf[i] - _ZERO)
            if mantissa:
                kept += 1
        else:
            exponent += 1
        i += 1
    if i < end and buf[i] == _DOT:
        i += 1
        while i < end and _ZERO <= buf[i] <= _NINE:
            written += 1
            if kept < 18:
                mantissa = mantissa * 10 + (buf[i] - _ZERO)
                exponent -= 1
                if mantissa:
                    kept += 1
            i += 1
    if written == 0 or (exact and written > 18):
        return 0.0, i, False
    if i < end and (buf[i] == _E or buf[i] == _e):
        i += 1
        sign = 1
        if i < end and (buf[i] == _MINUS or buf[i] == _PLUS):
            sign = -1 if buf[i] == _MINUS else 1
            i += 1
        e = 0
        e_start = i
        while i < end and _ZERO <= buf[i] <= _NINE:
            if e < 1000:
                e = e * 10 + (buf[i] - _ZERO)
            i += 1
        if i == e_start:
            return 0.0, i, False
        exponent += sign * e
    if mantissa == 0:
        return -0.0 if negative else 0.0, i, True
    if exponent > 22 or exponent < -22 or (exact and mantissa >= _MAX_MANTISSA):
        return 0.0, i, False
    value = float(mantissa) * pow10[exponent] if exponent >= 0 else float(mantissa) / pow10[-exponent]
    return -value if negative else value, i, True
