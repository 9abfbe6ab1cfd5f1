"""Linear Learner's sparse step, compiled: every model's scores, then every model's update,
in two passes over the step's non-zeros.

A sparse step of ``b`` rows with ``nnz`` non-zeros and ``k`` weight columns (models x
outputs) touches only the weight rows of the features present. In NumPy that needs the
distinct features (a sort), a gather of the weight and moment rows, a sparse product
each way and a dozen passes over the gathered ``(features, k)`` block, then a scatter
back: each pass a trip through memory, and the whole step 6-10x slower than the work.
Here one compiled pass computes the scores (each non-zero adds its weight row, k wide,
to its row's scores) and another collects the gradient per distinct feature and applies
the optimizer to each feature's weights and moments where they lie, once per step:
``O(nnz * k)``, independent of the number of features, with no temporaries but a
``(distinct features, k)`` gradient block.

The arithmetic is the optimizer of ``LinearLearnerState._apply`` (Adam with its bias
correction, SGD with momentum, Adagrad), L2 added to the gradient and L1 as a proximal
step scaled by each coordinate's step size, in float32 as the NumPy step does.

Compiled with Numba on first use (cached on disk next to this file, or in the user's
cache when the package is read-only), so importing onepass stays cheap.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

__all__ = ["ADAM", "SGD", "ADAGRAD", "kernels"]

ADAM, SGD, ADAGRAD = 0, 1, 2
AHEAD = 16  # non-zeros (features) ahead whose memory is prefetched
LINE = 16  # float32 per cache line


def _prefetch_intrinsic(write: int) -> Any:
    """``prefetch(array, flat_index)``: LLVM's prefetch (for reading, or for writing) of the cache line holding
    an element, so the random reads of weight records overlap instead of waiting in turn."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [args[1]])
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(write), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(arr, idx), codegen

    return prefetch


@cache
def kernels() -> tuple[Any, Any, Any]:
    """(scores, group, update), compiled on first call."""
    import numba

    jit = numba.njit(cache=True, nogil=True, error_model="numpy")
    prefetch, prefetch_w = _prefetch_intrinsic(0), _prefetch_intrinsic(1)

    @jit
    def scores(indptr, indices, data, P, intercept, F, r0, r1):  # pragma: no cover - compiled
        """F[r] = intercept + sum of data[j] * P[indices[j], 0] over row r's non-zeros, rows r0..r1."""
        k = F.shape[1]
        flat = P.reshape(-1)
        record = P.shape[1] * k
        last = indptr[r1] - 1
        for r in range(r0, r1):
            for c in range(k):
                F[r, c] = intercept[c]
            for j in range(indptr[r], indptr[r + 1]):
                ahead = indices[min(j + AHEAD, last)] * record
                for line in range(0, k, LINE):
                    prefetch(flat, ahead + line)
                f = indices[j]
                x = data[j]
                for c in range(k):
                    F[r, c] += x * P[f, 0, c]

    @jit
    def group(indptr, indices, data, positions, distinct, starts, rows, values, slots):  # pragma: no cover
        """The step's non-zeros grouped by feature (a counting sort); returns the distinct count.

        Feature ``distinct[p]`` has the non-zeros ``starts[p]:starts[p + 1]`` of ``rows``
        (their row) and ``values``. ``positions`` (one int32 per feature, -1 everywhere)
        is used as the feature -> p map and left as found; ``slots`` (nnz int32) is work.
        """
        n = indptr.shape[0] - 1
        u = 0
        last = indptr[n] - 1
        for j in range(indptr[n]):
            prefetch_w(positions, indices[min(j + AHEAD, last)])
            f = indices[j]
            p = positions[f]
            # branch-free (whether a feature is new is a coin toss for the branch predictor):
            # the writes for a new feature are harmless when it is not
            new = p < 0
            p = u if new else p
            positions[f] = p
            distinct[u] = f
            starts[u + 1] = 0
            u += new
            starts[p + 1] += 1
            slots[j] = p
        starts[0] = 0
        for p in range(u):
            starts[p + 1] += starts[p]
        for r in range(n):
            for j in range(indptr[r], indptr[r + 1]):
                p = slots[j]
                at = starts[p]
                rows[at] = r
                values[at] = data[j]
                starts[p] = at + 1
        for p in range(u - 1, 0, -1):  # the fill moved every start to the next one's place
            starts[p] = starts[p - 1]
        starts[0] = 0
        for p in range(u):
            positions[distinct[p]] = -1
        return u

    @jit
    def update(distinct, starts, rows, values, G, P, lr, wd, l1, use_l1, optimizer,
               a1, b1, b2, eps, p0, p1, g):  # pragma: no cover - compiled
        """One optimizer step on the records ``P[f]`` (weights, first moment, Adam's second
        moment) of features ``f`` in ``distinct[p0:p1]``.

        ``g`` is a work vector of ``k`` floats. ``a1``: Adam's bias correction of the
        step (1 otherwise); ``b1``: Adam's beta_1 or SGD's momentum.
        """
        k = G.shape[1]
        one = np.float32(1.0)
        zero = np.float32(0.0)
        c1 = one - b1
        c2 = one - b2
        flat = P.reshape(-1)
        record = P.shape[1] * k
        for p in range(p0, p1):
            ahead = distinct[min(p + AHEAD, p1 - 1)] * record
            for line in range(0, record, LINE):
                prefetch_w(flat, ahead + line)
            f = distinct[p]
            for c in range(k):
                g[c] = wd[c] * P[f, 0, c]
            for j in range(starts[p], starts[p + 1]):
                r = rows[j]
                x = values[j]
                for c in range(k):
                    g[c] += x * G[r, c]
            if optimizer == 0:  # adam; g becomes each coordinate's step size
                for c in range(k):
                    mm = b1 * P[f, 1, c] + c1 * g[c]
                    vv = b2 * P[f, 2, c] + c2 * (g[c] * g[c])
                    P[f, 1, c] = mm
                    P[f, 2, c] = vv
                    step = (lr[c] * a1) / (np.sqrt(vv) + eps)
                    P[f, 0, c] -= step * mm
                    g[c] = step
            elif optimizer == 1:  # sgd with momentum
                for c in range(k):
                    mm = b1 * P[f, 1, c] + g[c]
                    P[f, 1, c] = mm
                    P[f, 0, c] -= lr[c] * mm
                    g[c] = lr[c]
            else:  # adagrad: m1 holds the sum of squared gradients
                for c in range(k):
                    ss = P[f, 1, c] + g[c] * g[c]
                    P[f, 1, c] = ss
                    step = lr[c] / (np.sqrt(ss) + eps)
                    P[f, 0, c] -= step * g[c]
                    g[c] = step
            if use_l1:  # proximal step scaled by each coordinate's step size
                for c in range(k):
                    w = P[f, 0, c]
                    s = np.abs(w) - g[c] * l1[c]
                    P[f, 0, c] = np.copysign(np.maximum(s, zero), w)

    return scores, group, update
